"""kdbg.vcpu_control"""
