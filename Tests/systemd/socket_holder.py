"""Plays systemd's part for socket-activation tests: holds a listening socket across restarts of a service.

    socket_holder.py --listen 127.0.0.1:PORT [--name NAME] [--starts N] -- COMMAND ARGS...

Binds and listens once, then runs COMMAND with the socket as fd 3 and LISTEN_FDS=1, LISTEN_PID (the command's own
pid: the shell exec keeps it), LISTEN_FDNAMES=NAME, as a socket unit's service gets them. When the command exits it
is started again, up to N starts in all; connections that arrive meanwhile wait in the socket's queue, as they do
under systemd. Prints "started PID" for each start and "exited CODE" for each exit; on TERM it stops the command and
exits. systemd-socket-activate execs the service once and cannot restart it, hence this script.
"""
import argparse
import os
import signal
import socket
import subprocess
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    parser.add_argument("--name", default="")
    parser.add_argument("--starts", type=int, default=2)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    # A parent may have started us with signals blocked (Foundation's Process does): TERM must reach us and the service.
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command after --")
    host, port = args.listen.rsplit(":", 1)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, int(port)))
    listener.listen(128)
    # fd 3 is where sd_listen_fds looks; a fresh interpreter usually gave the socket fd 3 already.
    if listener.fileno() != 3:
        os.dup2(listener.fileno(), 3)
    child = None
    stopping = False

    def stop(signum, frame):
        # Only pass TERM on: the main loop's wait() sees the exit (a wait in here would deadlock with it).
        nonlocal stopping
        stopping = True
        if child is not None:
            child.terminate()

    signal.signal(signal.SIGTERM, stop)
    # LISTEN_PID must be the service's pid: sh exports its own $$ and execs the command under that same pid.
    launcher = ['/bin/sh', '-c', 'LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES="$0"; export LISTEN_PID LISTEN_FDS LISTEN_FDNAMES; '
                'exec "$@"', args.name] + command
    for _ in range(args.starts):
        child = subprocess.Popen(launcher, pass_fds=(3,))
        print("started %d" % child.pid, flush=True)
        code = child.wait()
        print("exited %d" % code, flush=True)
        if stopping:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
