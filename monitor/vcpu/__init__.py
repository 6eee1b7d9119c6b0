"""One host thread per vCPU: its CPU state (GDT/IDT/TSS, stubs), its KVM_RUN loop, its registers."""
