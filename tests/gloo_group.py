"""Run a function on 2 (or more) forked gloo processes without a free-port race.

Picking a port by binding port 0 in the test process, closing the socket and handing the number to the workers
leaves a window (process start, imports) in which another process - the other pytest-xdist worker's gloo
connections, anything on the machine - can take that ephemeral port; rank 0's store then fails with
EADDRINUSE. Here rank 0 binds port 0 itself, in its TCPStore server, keeps it, and sends the port it got to the
other ranks through a queue; nothing is released between choosing the port and using it.
"""
import multiprocessing

import torch


def init_gloo(rank, world_size, ports):
    """``dist.init_process_group('gloo')`` on a TCPStore that rank 0 serves on a port the kernel chose.

    Args:
        rank (int): this process's rank.
        world_size (int): the number of processes.
        ports (multiprocessing.Queue): made by :func:`start_gloo_processes`; rank 0 puts its port once per
            other rank.
    """
    import torch.distributed as dist
    if rank == 0:
        store = dist.TCPStore('127.0.0.1', 0, world_size, is_master=True, wait_for_workers=False)
        for _ in range(world_size - 1):
            ports.put(store.port)
    else:
        port = ports.get(timeout=300)  # rank 0 died before serving: start_processes reports its error
        store = dist.TCPStore('127.0.0.1', port, world_size, is_master=False)
    dist.init_process_group('gloo', store=store, rank=rank, world_size=world_size)


def start_gloo_processes(fn, args, nprocs=2):
    """``fn(rank, ports, *args)`` in ``nprocs`` forked processes (they inherit the imported modules and the
    objects in ``args``); ``fn`` calls ``init_gloo(rank, nprocs, ports)`` first. Raises what a process raised."""
    ports = multiprocessing.get_context('fork').Queue()
    torch.multiprocessing.start_processes(fn, args=(ports, *args), nprocs=nprocs, join=True, start_method='fork')
