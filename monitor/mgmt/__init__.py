"""The management socket: a running km takes requests (a snapshot, who it is) from km-cli over a UNIX socket."""
