/** The log entry fields in the export's column order (SPEC §5). */
export const LOG_COLUMNS = [
  'id',
  'time',
  'obj_type',
  'obj_id',
  'obj_name',
  'action',
  'success',
  'notes',
  'actor_user_id',
  'actor_user_name',
  'actor_project_id',
  'actor_project_name',
  'owner_domain_id',
  'owner_domain_name',
  'owner_project_id',
  'owner_project_name',
  'request_id',
  'client_ip',
] as const

export const DEFAULT_EXPORT_COLUMNS = ['time', 'obj_name', 'action', 'success', 'actor_user_name', 'actor_project_name', 'notes']
