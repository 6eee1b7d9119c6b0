"""Guest signals the Linux way: dispositions and delivery, the rt_sigframe, the alternate stack."""
