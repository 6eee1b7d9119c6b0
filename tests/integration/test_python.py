"""CPython as the payload: what its own test suite found km doing differently from Linux, each checked against a
native run of the same python3, and a fast subset of its test modules (the whole table is tools/python-tests.sh)."""
from __future__ import annotations

import os
import re

import pytest

from .test_dynamic import PYTHON, needs_testsuite, same_as_native

TIMING = re.compile(r" in \d+\.\d+s")      # unittest's "Ran N tests in 0.123s"

TTY_AND_FDS = r"""
import errno, os
master, slave = os.openpty()                        # glibc: ioctl(TIOCGPTPEER) on /dev/ptmx
print(os.isatty(slave), os.ttyname(slave).startswith('/dev/pts/'))
fd = os.memfd_create('Hi', os.MFD_CLOEXEC)
print(os.readlink(f'/proc/self/fd/{fd}'), os.get_inheritable(fd))
base = os.getpriority(os.PRIO_PROCESS, os.getpid())
os.setpriority(os.PRIO_PROCESS, os.getpid(), base + 1)
print(os.getpriority(os.PRIO_PROCESS, os.getpid()) - base, os.getpriority(os.PRIO_PROCESS, 0) - base)
for call in (lambda: os.tcsetpgrp(999, 0), lambda: os.tcgetpgrp(999)):
    try:
        call()
    except OSError as e:
        print(errno.errorcode[e.errno])
"""


def test_tty_memfd_priority():
    status, out, err = same_as_native(PYTHON, "-c", TTY_AND_FDS)
    assert (status, out) == (0, "True True\n/memfd:Hi (deleted) False\n1 1\nEBADF\nEBADF\n"), err


EXEC_KEEPS = r"""
import os, signal, sys
if sys.argv[1:] == ['after']:
    print(signal.getsignal(signal.SIGHUP), signal.getsignal(signal.SIGUSR1), signal.getsignal(signal.SIGTERM),
          sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
else:
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *a: None)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2, signal.SIGALRM})
    os.execv(sys.executable, [sys.executable, '-c', sys.argv[1], 'after'])
"""


def test_execve_keeps_ignored_signals_and_the_mask():
    """execve keeps SIG_IGN (here from the shell's trap too) and the signal mask; a caught signal goes back to
    SIG_DFL."""
    status, out, err = same_as_native("/bin/sh", "-c", f"trap '' HUP; exec {PYTHON} -c \"$0\" \"$0\"", EXEC_KEEPS)
    assert (status, out) == (0, "1 1 0 [<Signals.SIGUSR2: 12>, <Signals.SIGALRM: 14>]\n"), err


@needs_testsuite
@pytest.mark.parametrize("module", ["test_fileio", "test_struct"])
def test_cpython_module_passes_as_natively(module, tmp_path):
    """A fast subset of tools/python-tests.sh: unittest's verdict and counts are native's."""
    status, _, err = same_as_native(PYTHON, "-m", "unittest", f"test.{module}", normalize=TIMING,
                                    cwd=tmp_path)     # the tests write @test_PID files into the current directory
    assert status == 0 and err.rstrip().endswith(("OK", "OK (skipped=2)")), err


SUBPROCESS = r"""
import os, signal, subprocess, sys
child = [sys.executable, '-c']
print(subprocess.run(child + ['import os; os.kill(os.getpid(), 6)']).returncode)       # killed: -SIGABRT
p = subprocess.Popen(child + ['import time; time.sleep(60)'])
p.terminate()
print(p.wait())
print(subprocess.run(child + ['print(1)'], stdout=subprocess.DEVNULL, close_fds=True).returncode)
print(subprocess.run(child + ['import os; os.close(1); os.execv("/bin/true", ["true"])']).returncode)
out = subprocess.run(['/usr/bin/id', '-G'], group=65534, extra_groups=[100], capture_output=True, text=True)
print(out.stdout.split(), os.getresgid() == (0, 0, 0))
"""


def test_subprocess_statuses_and_ids(tmp_path):
    """A child killed by a signal is seen killed by it (km started by an execve dies of the payload's signal);
    a km with stdout closed still execs; group= and extra_groups= reach the child's credentials."""
    status, out, err = same_as_native(PYTHON, "-c", SUBPROCESS, cwd=tmp_path)
    assert (status, out.splitlines()[:4]) == (0, ["-6", "-15", "0", "0"]), err
    if os.geteuid() == 0:           # else both refuse the group change alike
        assert out.splitlines()[4] == "['65534', '100'] True"


TWO_SIGNALS_ON_THE_ALTSTACK = r"""
import os, signal
signal.signal(signal.SIGUSR1, lambda *a: None)      # CPython's handlers are SA_ONSTACK
signal.signal(signal.SIGUSR2, lambda *a: None)
read, write = os.pipe()
os.set_blocking(write, False)
signal.set_wakeup_fd(write)                          # the C handler writes: a syscall on the alternate stack
signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGUSR1, signal.SIGUSR2))
signal.raise_signal(signal.SIGUSR1)
signal.raise_signal(signal.SIGUSR2)
signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGUSR1, signal.SIGUSR2))
print(sorted(os.read(read, 10)))
"""


def test_nested_signal_frames_fit_faulthandlers_altstack():
    """faulthandler's alternate stack is SIGSTKSZ + AT_MINSIGSTKSZ: two nested frames must fit in it as on Linux
    (km's frames carried KVM's 4096-byte XSAVE image and AT_MINSIGSTKSZ said 2048: the heap below was overwritten,
    test_signal's test_pending died of 'corrupted size vs. prev_size')."""
    status, out, err = same_as_native(PYTHON, "-X", "faulthandler", "-c", TWO_SIGNALS_ON_THE_ALTSTACK)
    assert (status, out) == (0, "[10, 12]\n"), err


def test_network_interfaces():
    """if_nameindex/if_nametoindex (SIOCGIFINDEX and friends on a socket), as getaddrinfo's %scope names use."""
    status, out, err = same_as_native(PYTHON, "-c", "import socket; names = socket.if_nameindex(); "
                                      "print(names, [socket.if_nametoindex(n) for _, n in names])")
    assert status == 0 and "'lo'" in out, err


VSOCK_CID = "import fcntl, struct; print(struct.unpack('I', fcntl.ioctl(open('/dev/vsock', 'rb'), 0x7B9, bytes(4))))"


@pytest.mark.skipif(not os.path.exists("/dev/vsock"), reason="no /dev/vsock on this host")
def test_vsock_local_cid():
    """/dev/vsock's IOCTL_VM_SOCKETS_GET_LOCAL_CID answers the host's CID (km said ENOTTY, so test_socket skipped
    its AF_VSOCK tests where Linux runs them)."""
    status, out, err = same_as_native(PYTHON, "-c", VSOCK_CID)
    assert status == 0 and out.startswith("("), err


PROMPT_SIGCHLD = r"""
import os, select, signal, subprocess
signal.signal(signal.SIGCHLD, lambda *a: None)
r, w = os.pipe()
os.set_blocking(w, False)
signal.set_wakeup_fd(w)
prompt = 0
for _ in range(5):
    subprocess.run(['/bin/true'])
    if select.select([r], [], [], 0.4)[0]:        # a deadline: Linux has sent it before wait4 returned
        prompt += len(os.read(r, 64)) > 0
print(prompt)
"""


def test_sigchld_reaches_the_payload_promptly():
    """A child's SIGCHLD reaches the payload's handler (and asyncio's wakeup fd) at once: taken by a vCPU thread,
    it waited for km's main thread to wake up (up to a second), and asyncio's SafeChildWatcher tests warned of a
    loop detached with pending handlers."""
    status, out, err = same_as_native(PYTHON, "-c", PROMPT_SIGCHLD)
    assert (status, out) == (0, "5\n"), err


def test_strace_trace_names_the_failing_call():
    """The README's recipe: KM_VERBOSE=strace gives each syscall with its path and errno name."""
    from harness.km import run_km
    result = run_km(PYTHON, "-c", "open('/nonexistent-km-strace')", env={"KM_VERBOSE": "strace"})
    lines = [line for line in result.stderr.decode().splitlines() if "nonexistent-km-strace" in line]
    assert result.returncode == 1 and any(" strace " in line and "openat(" in line and line.endswith("= -2 ENOENT")
                                          for line in lines), lines


SHARED_SEMAPHORE = r"""
import multiprocessing as mp, time
from concurrent.futures import ProcessPoolExecutor
def worker(q, s):
    s.acquire()
    q.put('acquired')
if __name__ == '__main__':
    mp.set_start_method('fork')
    q, s = mp.Queue(), mp.Semaphore(0)
    p = mp.Process(target=worker, args=(q, s))
    p.start()
    time.sleep(0.2)
    s.release()                      # sem_post: a futex wake another process waits for
    print(q.get(timeout=30))
    p.join()
    with ProcessPoolExecutor(2) as pool:
        print(list(pool.map(abs, [-1, -2, 3])), p.exitcode)
"""


def test_process_shared_semaphore_wakes_another_process(tmp_path):
    """A POSIX semaphore in shared memory: the waiter is a forked km, the waker the parent (km's in-process futex
    table never woke it: ProcessPoolExecutor hung, test_asyncio's test_get_event_loop_new_process with it)."""
    script = tmp_path / "sem.py"
    script.write_text(SHARED_SEMAPHORE)
    status, out, err = same_as_native(PYTHON, str(script), cwd=tmp_path)
    assert (status, out) == (0, "acquired\n[1, 2, 3] 0\n"), err


CPU_TIMERS = r"""
import signal, time
for which, signo in ((signal.ITIMER_VIRTUAL, signal.SIGVTALRM), (signal.ITIMER_PROF, signal.SIGPROF)):
    hits = []
    signal.signal(signo, lambda *a: hits.append(1))
    signal.setitimer(which, 0.05, 0.02)
    start = time.monotonic()
    while len(hits) < 3 and time.monotonic() - start < 30:
        pow(12345, 2345, 3456)
    print(which, len(hits) >= 3, signal.setitimer(which, 0) != (0.0, 0.0), signal.getitimer(which))
"""


def test_cpu_time_itimers():
    """ITIMER_VIRTUAL and ITIMER_PROF fire on the process's CPU time (test_signal's ItimerTest)."""
    status, out, err = same_as_native(PYTHON, "-c", CPU_TIMERS)
    assert (status, out) == (0, "1 True True (0.0, 0.0)\n2 True True (0.0, 0.0)\n"), err
