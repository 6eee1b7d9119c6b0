"""km-runtime: an OCI runtime that runs a container's process under km and hands everything else to runc."""
