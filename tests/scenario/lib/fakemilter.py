"""fakemilter - helpers for scenario tests with milters: processes to
stop, a port to wait for, and the milter packet (mfdef.h: a 4-octet
length in network order, the command octet, its payload) for milters
spoken by hand where libmilter cannot misbehave the way a test needs.

    fakemilter.stop(proc)             SIGTERM, then SIGKILL after 10s
    fakemilter.listening(port)        something accepts on 127.0.0.1:port
    fakemilter.pkt(b"c", data)        one packet
    for cmd, data in fakemilter.packets(sock): ...
                                      the packets a socket sends, until EOF
"""
import signal
import socket
import struct
import subprocess


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return True
    except OSError:
        return False


def pkt(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd + data


def packets(s):
    buf = b""
    while True:
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
            chunk = s.recv(65536)
            if not chunk:
                return
            buf += chunk
        n = struct.unpack(">I", buf[:4])[0]
        yield buf[4:5], buf[5:4 + n]
        buf = buf[4 + n:]
