"""KVM through cffi: the ABI declarations (the one layout source), the VM and vCPU file descriptors, ioctls."""
