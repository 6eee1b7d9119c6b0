"""A payload process: how it starts and ends, and fork and exec into new km processes."""
