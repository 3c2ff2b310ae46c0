"""Use cases. Each is one transaction: load visible → authorize → change → op-log → enqueue →
commit."""
