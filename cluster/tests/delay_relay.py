"""A TCP relay that adds latency and loss-like stalls, for kernels without tc netem.

Every chunk is forwarded DELAY seconds after it arrived (order kept, per direction); with
probability LOSS a chunk also waits STALL seconds, the way a TCP stream stalls while a lost
segment is retransmitted. Usage: delay_relay.py LISTEN_HOST:PORT TARGET_HOST:PORT DELAY LOSS [STALL]
"""
import asyncio
import random
import sys


async def pump(reader, writer, delay, loss, stall, rng):
    queue = asyncio.Queue()
    loop = asyncio.get_running_loop()

    async def sender():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    task = asyncio.create_task(sender())
    last = 0.0
    try:
        while data := await reader.read(65536):
            due = loop.time() + delay + (stall if rng.random() < loss else 0.0)
            last = max(last, due)
            queue.put_nowait((last, data))
    except ConnectionError:
        pass
    queue.put_nowait((0.0, None))
    await task


async def main():
    listen, target, delay, loss = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    stall = float(sys.argv[5]) if len(sys.argv) > 5 else 0.2
    lhost, lport = listen.rsplit(":", 1)
    thost, tport = target.rsplit(":", 1)
    rng = random.Random(7)

    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(thost, int(tport))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pump(client_reader, server_writer, delay, loss, stall, rng),
                             pump(server_reader, client_writer, delay, loss, stall, rng), return_exceptions=True)

    server = await asyncio.start_server(handle, lhost, int(lport))
    print("relay ready", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
