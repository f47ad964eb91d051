"""The gateway's Modbus TCP source: one connection, several unit ids, each polled on its own clock.

pymodbus stays inside this module. Around it, this module adds what a gateway that runs for
months needs:

- Every request has a deadline, and a request fails at once, rather than at its deadline, when
  the socket closes or the answer is not the frame it should be (another transaction id or unit,
  a protocol id other than 0, an impossible length). The check runs on the raw bytes as they
  arrive, so garbage from a misconfigured port costs no timeout.
- After such a failure the connection is closed and opened afresh: a late or partial answer left
  on the old socket could otherwise be taken for the next request's. A request is sent again
  ``retries`` times, each on a new connection; then its tags are reported BAD and the source
  waits out ``Backoff`` before it connects again. A Modbus exception answer (for example
  ILLEGAL_DATA_ADDRESS) is the device speaking correctly: its block is BAD, the connection stays.
- BAD is reported once, when a tag goes bad (value None, ``Quality.BAD``), not at every poll of an
  outage: the platform sees the moment it started and the first good value after it, and a 10 ms
  poll of a dead device does not flood the uplink with copies of the same news.
- One pymodbus client per connection, dropped whole when the connection is, and one request at a
  time per connection; nothing accumulates per failure.
- The next request goes out before the last answer is decoded: decoding, BAD bookkeeping and
  handing readings to ``emit`` run as soon as the polling task waits for the device, in the order
  the answers came. Modbus allows one request at a time on most devices, so the time the device
  takes to answer is the time the gateway has for its own work; doing that work in between
  requests instead made every round trip longer.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import NoReturn, cast

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu import ModbusPDU

from clusterbrain.connectors.modbus.registers import (
    BIT_TABLES,
    Block,
    Decoded,
    ModbusConnection,
    ModbusDevice,
    ModbusTag,
    RegisterWrite,
    block_decoder,
    encode_write,
    exception_name,
)
from clusterbrain.connectors.source import (
    Backoff,
    Emit,
    Reading,
    Sample,
    SourceCounters,
    Value,
    WriteRefused,
)
from clusterbrain.telemetry.quality import Quality

Item = Reading | Sample
Clock = Callable[[], int]
"""Microseconds since the epoch, UTC."""


def utc_now_us() -> int:
    return time.time_ns() // 1000


class LinkError(Exception):
    """The connection cannot be trusted any more: no answer, a malformed one, or closed."""


class DeviceAnswer(Exception):
    """The device answered with a Modbus exception (or an answer that does not fit the request)."""


def check_frame(request: bytes, answer: bytes) -> str:
    """Why ``answer`` (the bytes received so far) cannot answer ``request``; '' while it can.

    Both are Modbus TCP frames: transaction id (2 bytes), protocol id (2, always 0), length (2,
    counting unit id and PDU), unit id, function code, data. An exception answer carries the
    function code with its high bit set.

    >>> req = bytes.fromhex("0001 0000 0006 02 03 0000 000a")
    >>> check_frame(req, bytes.fromhex("0001 0000 0017 02 03 14")), check_frame(req, b"\\x00")
    ('', '')
    >>> check_frame(req, b"HTTP/1.1 400 Bad Request")
    'transaction id 0x4854, expected 0x0001'
    >>> check_frame(req, bytes.fromhex("0001 0000 0003 02 83 02"))
    ''
    """
    if len(answer) < 2 or len(request) < 8:
        return ""
    if answer[:2] != request[:2]:
        return f"transaction id 0x{answer[:2].hex()}, expected 0x{request[:2].hex()}"
    if len(answer) >= 4 and answer[2:4] != b"\x00\x00":
        return f"protocol id 0x{answer[2:4].hex()} is not Modbus (0)"
    if len(answer) >= 6 and not 3 <= int.from_bytes(answer[4:6], "big") <= 254:
        return f"frame length {int.from_bytes(answer[4:6], 'big')} is impossible"
    if len(answer) >= 7 and answer[6] != request[6]:
        return f"unit id {answer[6]}, expected {request[6]}"
    if len(answer) >= 8 and answer[7] & 0x7F != request[7]:
        return f"function code {answer[7]}, expected {request[7]}"
    return ""


class _Link:
    """One TCP connection through pymodbus, which fails fast and is thrown away whole."""

    def __init__(self, host: str, port: int, request_timeout_s: float) -> None:
        self._timeout = request_timeout_s
        self._failure: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiter: asyncio.Task[object] | None = None
        """The task waiting for an answer, cancelled when the connection fails meanwhile."""
        self._interrupted = False
        self._request = b""
        # pymodbus's deadline bounds each request (``open`` bounds the connect with its own);
        # its own reconnecting and retrying are off, both are done here.
        self._client = AsyncModbusTcpClient(
            host,
            port=port,
            timeout=request_timeout_s,
            retries=0,
            reconnect_delay=0,
            trace_packet=self._on_packet,
            trace_connect=self._on_connect,
        )

    async def open(self) -> str:
        """Connect; '' on success, else why not."""
        try:
            async with asyncio.timeout(self._timeout):
                connected = await self._client.connect()
        except TimeoutError:
            self._client.close()
            return f"no connection within {self._timeout:g} s"
        if not connected:
            self._client.close()
            return "cannot connect (refused or unreachable)"
        return ""

    def close(self) -> None:
        self._client.close()
        if not self._failure.done():
            self._failure.set_result("closed")

    @property
    def failed(self) -> bool:
        return self._failure.done()

    async def call(self, send: Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]]) -> ModbusPDU:
        """Send one request and return its answer; LinkError when none usable came in time.

        The request runs in the caller's task, under pymodbus's deadline; a failure seen on the
        socket cancels that wait at once. (A task per request, raced against the failure with
        ``asyncio.wait``, cost as much CPU as decoding the answer; a second deadline of our own
        around pymodbus's cost a tenth of the round trip.)
        """
        if self._failure.done():
            raise LinkError(self._failure.result())
        task = asyncio.current_task()
        assert task is not None
        self._waiter, self._interrupted = task, False
        try:
            return await send(self._client)
        except ModbusIOException as exc:
            # pymodbus's words for its deadline passing ("No response received after 0 retries")
            late = "no response" in str(exc).lower()
            reason = f"no answer within {self._timeout:g} s" if late else str(exc)
            raise LinkError(self._why(reason)) from None
        except asyncio.CancelledError:
            if not self._interrupted or task.uncancel() > 0:
                raise  # cancelled from outside (the gateway stopping), not by a failure here
            raise LinkError(self._why("closed")) from None
        except Exception as exc:  # whatever pymodbus raised, this connection is done
            raise LinkError(self._why(str(exc) or type(exc).__name__)) from None
        finally:
            self._waiter = None

    def _why(self, otherwise: str) -> str:
        return self._failure.result() if self._failure.done() else otherwise

    def _fail(self, reason: str) -> None:
        if not self._failure.done():
            self._failure.set_result(reason)
        if self._waiter is not None and not self._interrupted:
            self._interrupted = True
            self._waiter.cancel()

    def _on_packet(self, sending: bool, data: bytes) -> bytes:
        if sending:
            self._request = data
            return data
        # pymodbus drops more than a frame's worth of unparsed bytes before calling this, so a long
        # burst of garbage ends in the deadline instead; anything shorter is caught here.
        problem = check_frame(self._request, data)
        if problem:
            self._fail(f"malformed answer: {problem}")
            return b""  # pymodbus sees nothing to decode; the request fails on our signal
        return data

    def _on_connect(self, connected: bool) -> None:
        if not connected:
            self._fail("connection closed by the device")


_READ_METHODS = {
    "holding": "read_holding_registers",
    "input": "read_input_registers",
    "coil": "read_coils",
    "discrete_input": "read_discrete_inputs",
}


def _send_read(block: Block) -> Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]]:
    method, address, count, unit = (
        _READ_METHODS[block.table],
        block.address,
        block.count,
        block.unit_id,
    )

    def send(client: AsyncModbusTcpClient) -> Awaitable[ModbusPDU]:
        read: Callable[..., Awaitable[ModbusPDU]] = getattr(client, method)
        return read(address, count=count, device_id=unit)

    return send


@dataclass(frozen=True, slots=True)
class _Read:
    """One block of a poll with its request and its decoder, built once per source."""

    block: Block
    send: Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]]
    decode: Callable[[Sequence[int] | Sequence[bool]], dict[str, Decoded]]


def _prepare(block: Block) -> _Read:
    return _Read(block, _send_read(block), block_decoder(block))


def _send_write(write: RegisterWrite) -> Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]]:
    def send(client: AsyncModbusTcpClient) -> Awaitable[ModbusPDU]:
        unit, address = write.unit_id, write.address
        if write.function_code == 5:
            return client.write_coil(address, write.coil, device_id=unit)
        if write.function_code == 6:
            return client.write_register(address, write.registers[0], device_id=unit)
        if write.function_code == 16:
            return client.write_registers(address, list(write.registers), device_id=unit)
        return client.mask_write_register(
            address=address, and_mask=write.and_mask, or_mask=write.or_mask, device_id=unit
        )

    return send


def _answer_data(block: Block, answer: ModbusPDU) -> Sequence[int] | Sequence[bool]:
    if answer.isError():
        raise DeviceAnswer(exception_name(int(getattr(answer, "exception_code", 0))))
    return answer.bits if block.table in BIT_TABLES else answer.registers


class ModbusSource:
    """A ``FieldSource`` for one Modbus TCP connection and the units behind it.

    Readings of all devices come through one ``emit``, one batch per device and poll; tag names
    are unique across the connection and ``device_of`` tells which device a tag belongs to.
    """

    def __init__(self, connection: ModbusConnection, *, clock: Clock = utc_now_us) -> None:
        self.connection = connection
        self.name = connection.label
        self.counters = SourceCounters()
        self.counters.extra.update(requests=0, overruns=0, writes_refused=0)
        self._clock = clock
        self._plans = [
            (device, [_prepare(block) for block in device.blocks()])
            for device in connection.devices
        ]
        self._link: _Link | None = None
        self._io = asyncio.Lock()
        self._ever_connected = False
        self._bad: set[str] = set()
        self._backoff = Backoff(connection.reconnect_initial_s, connection.reconnect_max_s)
        self._later: deque[Callable[[], None]] = deque()
        """Work on answers already in, done while the device works on the next request."""

    @property
    def blocks(self) -> list[Block]:
        """Every read of one poll of every device, in order."""
        return [read.block for _, reads in self._plans for read in reads]

    def device_of(self, tag: str) -> str:
        """The name of the device a tag is read from; KeyError for an unknown tag."""
        return self.connection.find(tag)[0].name

    # ------------------------------------------------------------------ reading

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set; reconnect with backoff on any failure, never raise."""
        try:
            while not stop.is_set():
                try:
                    if await self._connect():
                        await self._poll_until_lost(emit, stop)
                except Exception as exc:  # a bug must cost a reconnect, never the gateway
                    self._count_error(f"unexpected {type(exc).__name__}: {exc}")
                self._drop_link()
                self._catch_up()
                if stop.is_set():
                    break  # stopping is no outage: the values were good until now
                self._report_bad(emit, [t for d, _ in self._plans for t in d.tags])
                if await self._backoff.wait(stop):
                    break
        finally:
            self._drop_link()
            self._catch_up()

    def _defer(self, work: Callable[[], None]) -> None:
        """Do ``work`` once the polling task waits, after the work deferred before it."""
        self._later.append(work)
        if len(self._later) == 1:
            asyncio.get_running_loop().call_soon(self._catch_up)

    def _catch_up(self) -> None:
        """Do all deferred work now, in order."""
        later = self._later
        while later:
            work = later[0]
            try:
                work()
            except Exception as exc:  # a bug must cost one answer, never the gateway
                self._count_error(f"unexpected {type(exc).__name__}: {exc}")
            later.popleft()

    async def _poll_until_lost(self, emit: Emit, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        due = [loop.time()] * len(self._plans)
        while not stop.is_set():
            index = min(range(len(due)), key=due.__getitem__)
            delay = due[index] - loop.time()
            if delay > 0 and await _stopped_within(stop, delay):
                return
            device, blocks = self._plans[index]
            if await self._poll(device, blocks, emit):
                return
            due[index] += device.poll_interval_s
            if due[index] < loop.time():
                # Behind schedule (a slow device, a busy machine): skip, do not burst to catch up.
                self.counters.extra["overruns"] += 1
                due[index] = loop.time()

    async def _poll(self, device: ModbusDevice, reads: list[_Read], emit: Emit) -> bool:
        """One poll of one device, its readings emitted in one batch; True if the link was lost.

        Each answer is decoded after the next request has gone out (``_defer``).
        """
        readings: list[Item] = []
        for position, read in enumerate(reads):
            try:
                data = await self._read(read)
            except LinkError:
                unread = [tag for r in reads[position:] for tag in r.block.tags]
                self._defer(partial(self._finish_poll, emit, readings, unread))
                return True
            except DeviceAnswer as exc:
                self._defer(partial(self._block_failed, device, read.block, exc, readings))
                continue
            ts = self._clock()
            self._backoff.reset()
            self._defer(partial(self._decoded, device, read, data, ts, readings))
        self._defer(partial(self._finish_poll, emit, readings, ()))
        return False

    def _decoded(
        self,
        device: ModbusDevice,
        read: _Read,
        data: Sequence[int] | Sequence[bool],
        ts: int,
        readings: list[Item],
    ) -> None:
        try:
            values = read.decode(data)
        except ValueError as exc:
            self._block_failed(device, read.block, exc, readings)
            return
        self._add_readings(read.block, values, ts, readings)

    def _finish_poll(self, emit: Emit, readings: list[Item], unread: Sequence[ModbusTag]) -> None:
        """Emit a poll's readings, with BAD for the tags it could not read (the link failed)."""
        if unread:
            readings.extend(self._bad_readings(unread))
        if readings:
            emit(readings)

    def _block_failed(
        self, device: ModbusDevice, block: Block, exc: Exception, readings: list[Item]
    ) -> None:
        self._count_error(f"{device.name} {block}: {exc}")
        readings.extend(self._bad_readings(block.tags))

    def _add_readings(
        self, block: Block, values: dict[str, Decoded], ts: int, readings: list[Item]
    ) -> None:
        """The block's values as one ``Sample``; a value the device has no number for is BAD."""
        if None in values.values():  # NaN or infinity: the device has no number to give
            missing = [tag for tag in block.tags if values[tag.name] is None]
            for tag in missing:
                del values[tag.name]
            readings.extend(self._bad_readings(missing, ts))
        if self._bad:
            for name in values:
                self._bad.discard(name)
        if values:
            readings.append(Sample(ts, cast(dict[str, Value], values)))
        self.counters.reads += len(values)

    async def _read(self, read: _Read) -> Sequence[int] | Sequence[bool]:
        """Read one block, sending it again on a new connection after a link failure."""
        for attempt in range(self.connection.retries + 1):
            try:
                answer = await self._call(read.send)
                return _answer_data(read.block, answer)
            except LinkError as exc:
                self._count_error(f"{read.block}: {exc}")
                self._drop_link()
                if attempt == self.connection.retries or not await self._connect():
                    raise
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _call(
        self, send: Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]]
    ) -> ModbusPDU:
        async with self._io:
            if self._link is None or self._link.failed:
                raise LinkError("not connected")
            self.counters.extra["requests"] += 1
            return await self._link.call(send)

    # ------------------------------------------------------------------ connection

    async def _connect(self) -> bool:
        self._drop_link()
        link = _Link(self.connection.host, self.connection.port, self.connection.request_timeout_s)
        problem = await link.open()
        if problem:
            link.close()
            self._count_error(f"{self.connection.host}:{self.connection.port}: {problem}")
            return False
        self._link = link
        self.counters.connected = True
        if self._ever_connected:
            self.counters.reconnects += 1
        self._ever_connected = True
        return True

    def _drop_link(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None
        self.counters.connected = False

    def _count_error(self, message: str) -> None:
        self.counters.errors += 1
        self.counters.last_error = message

    def _bad_readings(self, tags: Sequence[ModbusTag], ts: int | None = None) -> list[Reading]:
        """BAD readings for the tags that were not BAD already."""
        fresh = [tag.name for tag in tags if tag.name not in self._bad]
        self._bad.update(fresh)
        stamp = self._clock() if ts is None else ts
        return [Reading(name, stamp, None, Quality.BAD) for name in fresh]

    def _report_bad(self, emit: Emit, tags: Sequence[ModbusTag]) -> None:
        readings = self._bad_readings(tags)
        if readings:
            emit(readings)

    # ------------------------------------------------------------------ writing

    async def write(self, tag: str, value: Value) -> None:
        """Write one value; WriteRefused with the reason when it is not allowed or fails.

        Refused before anything is sent: an unknown or read-only tag, a value of the wrong kind,
        outside the tag's min/max, or that does not fit its register type.
        """
        try:
            _, spec = self.connection.find(tag)
        except KeyError:
            self._refuse(f"no tag {tag!r} on {self.name}")
        if not spec.writable:
            self._refuse(f"tag {tag!r} is not writable")
        try:
            request = encode_write(spec, value)
        except ValueError as exc:
            self._refuse(f"tag {tag!r}: {exc}")
        if self._link is None:
            self._write_failed(f"tag {tag!r}: not connected to {self.name}")
        try:
            answer = await self._call(_send_write(request))
        except LinkError as exc:
            self._drop_link()  # the poll loop notices and reconnects
            self._write_failed(f"tag {tag!r}: no acknowledgement from the device: {exc}")
        if answer.isError():
            code = int(getattr(answer, "exception_code", 0))
            self._write_failed(f"tag {tag!r}: the device refused the write: {exception_name(code)}")
        self.counters.writes += 1

    def _refuse(self, reason: str) -> NoReturn:
        self.counters.extra["writes_refused"] += 1
        raise WriteRefused(reason)

    def _write_failed(self, reason: str) -> NoReturn:
        self.counters.write_errors += 1
        self.counters.last_error = reason
        raise WriteRefused(reason)


async def _stopped_within(stop: asyncio.Event, delay: float) -> bool:
    """Sleep up to ``delay`` seconds; True as soon as ``stop`` is set."""
    try:
        async with asyncio.timeout(delay):
            await stop.wait()
    except TimeoutError:
        return False
    return True
