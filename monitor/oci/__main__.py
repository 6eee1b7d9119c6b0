"""python -m monitor.oci: km-runtime."""
from .cli import main

main()
