"""Tables, one module per aggregate. Importing this package registers them all."""

from hostimage.db.models.format_copies import FormatCopy
from hostimage.db.models.host_images import HostImage, Share
from hostimage.db.models.hosts import Host
from hostimage.db.models.identity import Domain, Project, RoleAssignment, Token, User
from hostimage.db.models.images import Image
from hostimage.db.models.login_throttle import LoginAttempt
from hostimage.db.models.oplog import LogEntry
from hostimage.db.models.servers import Server, ServerDisk
from hostimage.db.models.settings import SettingRow
from hostimage.db.models.tasks import Task

__all__ = [
    "Domain",
    "FormatCopy",
    "Host",
    "HostImage",
    "Image",
    "LogEntry",
    "LoginAttempt",
    "Project",
    "RoleAssignment",
    "Server",
    "ServerDisk",
    "SettingRow",
    "Share",
    "Task",
    "Token",
    "User",
]
