"""Relays every frame between two interfaces (packet sockets): a function whose traffic
lives in a process."""

import select
import socket
import sys

ETH_P_ALL = 3


def packet_socket(ifname):
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((ifname, 0))
    return sock


def main(a, b, ready):
    first, second = packet_socket(a), packet_socket(b)
    open(ready, "w").close()        # relaying from now on: start.sh may return
    peer = {first: second, second: first}
    while True:
        ready, _, _ = select.select(list(peer), [], [])
        for sock in ready:
            frame, address = sock.recvfrom(65536)
            if address[2] == socket.PACKET_OUTGOING:
                continue            # what this relay (or the stack) sent out of it
            peer[sock].send(frame)


if __name__ == "__main__":
    main(*sys.argv[1:4])
