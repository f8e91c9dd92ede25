"""A child process's output (stdout, stderr merged into it), collected by
a thread as it comes, for tests that wait for a line and look at what
came after a mark: s_server (sserver.py) and interactive clients
(tls_clients.py)."""

import threading
import time


class Captured:
    """Collects proc.stdout (a binary pipe) from the start."""

    def __init__(self, proc):
        self.proc = proc
        self._out = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        while True:
            chunk = self.proc.stdout.read1(65536)
            if not chunk:
                return
            with self._lock:
                self._out += chunk

    def output(self, since=0):
        with self._lock:
            return bytes(self._out[since:]).decode(errors="replace")

    def mark(self):
        """An offset into the output, for output(since=...)."""
        with self._lock:
            return len(self._out)

    def _seen(self, needle, since, count):
        with self._lock:
            return self._out[since:].count(needle) >= count

    def wait_output(self, needle, timeout, since=0, need_alive=False,
                    count=1):
        """Wait until needle (bytes) shows count times in the output after
        since; False after the timeout (or, with need_alive, the exit)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._seen(needle, since, count):
                return True
            if need_alive and self.proc.poll() is not None:
                self._reader.join(5)
                return self._seen(needle, since, count)
            time.sleep(0.02)
        return False

    def send(self, text):
        """Write to the process's stdin."""
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def join(self, timeout=5):
        """Wait for the reader (after the process ended)."""
        self._reader.join(timeout)
