"""A pure-Python workload (method calls, attribute access, dicts, small ints), timed on the thread's CPU clock:
the same function runs under `python pyloop.py` and inside a keel-pool worker (GET / answers the milliseconds),
so bench/interp.sh compares the interpreter's own binary with the worker that hosts it."""
import sys
import time

ROUNDS = 2_000_000


class Account:
    __slots__ = ("balance", "history")

    def __init__(self):
        self.balance = 0
        self.history = {}

    def deposit(self, day, amount):
        self.balance += amount
        self.history[day] = self.history.get(day, 0) + amount
        return self.balance


def work(rounds=ROUNDS):
    accounts = [Account() for _ in range(16)]
    total = 0
    for n in range(rounds):
        account = accounts[n & 15]
        total += account.deposit(n % 31, n & 7)
        if n % 1000 == 0:
            account.history = {day: value for day, value in account.history.items() if value > 3}
    return total


def timed():
    start = time.thread_time()
    work()
    return (time.thread_time() - start) * 1000


def application(environ, start_response):
    body = ("%.1f\n" % timed()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


if __name__ == "__main__":
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    for _ in range(runs):
        print("%.1f" % timed())
