"""Stop-the-world for vCPU threads: a reserved real-time signal kicks each out of KVM_RUN; each parks and
acknowledges before a stop is reported (all-stop semantics)."""
from .controller import KICK_SIGNAL, Member, PauseTimeout, StopTheWorld, install_kick_handler, pause  # noqa: F401
