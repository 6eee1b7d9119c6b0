"""monitor.kvm"""
