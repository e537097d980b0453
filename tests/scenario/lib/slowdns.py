"""slowdns - a DNS forwarder on loopback that answers late, for tests of
what the daemon does while its lookups are outstanding.

It sits between libunbound and a dnsrig (NSD): every query that arrives
on ip:port (UDP or TCP) is held for `delay` seconds, then sent to the
upstream server and its answer relayed back unchanged.  Nothing is
parsed or changed, so DNSSEC validation works as before.

    import slowdns
    slow = slowdns.SlowDns(drtest.ip(2), rig.ip, rig.port, delay=0.25)
    conf = slow.unbound_conf(rig)   # rig's libunbound config, through us
    ...
    slow.queries                    # how many were forwarded so far
    slow.stop()                     # also at exit

Keep the delay below libunbound's first retransmit timeout (376 ms) so
each query is sent once.  Threads in the test's own process; only the
standard library; nothing is sent anywhere but the upstream address.
"""

import atexit
import socket
import struct
import threading
import time


def _free_port(ip):
    """A port free for both UDP and TCP on ip."""
    for _ in range(50):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t.bind((ip, 0))
            port = t.getsockname()[1]
            u.bind((ip, port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise OSError("no free port on %s" % ip)


def _recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


class SlowDns:
    def __init__(self, ip, upstream_ip, upstream_port, delay=0.25,
                 port=None):
        self.ip = ip
        self.port = port or _free_port(ip)
        self.upstream = (upstream_ip, int(upstream_port))
        self.delay = delay
        self.queries = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((ip, self.port))
        self.udp.settimeout(0.2)
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((ip, self.port))
        self.tcp.listen(64)
        self.tcp.settimeout(0.2)
        for fn in (self._udp_loop, self._tcp_loop):
            threading.Thread(target=fn, daemon=True).start()
        atexit.register(self.stop)

    def unbound_conf(self, rig, path=None):
        """Write rig's libunbound config with every stub-addr pointing
        here instead of at NSD; returns its path."""
        path = rig.unbound_conf(path)
        with open(path) as f:
            text = f.read()
        text = text.replace("stub-addr: %s@%d" % (rig.ip, rig.port),
                            "stub-addr: %s@%d" % (self.ip, self.port))
        with open(path, "w") as f:
            f.write(text)
        return path

    def _count(self):
        with self._lock:
            self.queries += 1

    # -- UDP: one thread per query, so the delays overlap
    def _udp_loop(self):
        while not self._stop.is_set():
            try:
                q, client = self.udp.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._udp_one, args=(q, client),
                             daemon=True).start()

    def _udp_one(self, q, client):
        time.sleep(self.delay)
        self._count()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(5)
        try:
            s.sendto(q, self.upstream)
            a, _ = s.recvfrom(65535)
            self.udp.sendto(a, client)
        except OSError:
            pass            # the client retries or gives up by itself
        finally:
            s.close()

    # -- TCP (truncated answers): one thread per connection
    def _tcp_loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self.tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._tcp_conn, args=(c,),
                             daemon=True).start()

    def _tcp_conn(self, c):
        c.settimeout(10)
        try:
            while True:
                (n,) = struct.unpack("!H", _recv_exact(c, 2))
                q = _recv_exact(c, n)
                time.sleep(self.delay)
                self._count()
                with socket.create_connection(self.upstream, timeout=5) as u:
                    u.sendall(struct.pack("!H", len(q)) + q)
                    (m,) = struct.unpack("!H", _recv_exact(u, 2))
                    a = _recv_exact(u, m)
                c.sendall(struct.pack("!H", len(a)) + a)
        except (OSError, EOFError, struct.error):
            pass
        finally:
            c.close()

    def stop(self):
        if self._stop.is_set():
            return
        self._stop.set()
        for s in (self.udp, self.tcp):
            try:
                s.close()
            except OSError:
                pass
