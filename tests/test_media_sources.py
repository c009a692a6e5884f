"""
Tests for L{rvoip_twisted.media.sources}, L{rvoip_twisted.media.sinks} and
L{rvoip_twisted.media.wav}.
"""

import math
import os
import struct
import tempfile

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from rvoip_twisted.interfaces import IAudioSink, IAudioSource
from rvoip_twisted.media import wav
from rvoip_twisted.media.sinks import BufferSink, NullSink, WavRecorder
from rvoip_twisted.media.sources import SequenceSource, SilenceSource, ToneSource, WavSource


def samples(data):
    return list(struct.unpack("<%dh" % (len(data) // 2), data))


def write_wav(path, pcm, rate=8000, channels=1, bits=16, tag=1, extensible=False):
    """Write a WAV file by hand (independently of the module under test)."""
    block = channels * bits // 8
    if extensible:
        fmt = struct.pack("<HHIIHHHHI16s", 0xFFFE, channels, rate, rate * block, block, bits,
                          22, bits, 0, struct.pack("<H", tag) + b"\x00" * 14)
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"LIST" + struct.pack("<I", 4) + b"INFO"  # a chunk to skip
    body += b"data" + struct.pack("<I", len(pcm)) + pcm
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body)) + body)


class TempDirMixin:
    def tempPath(self, name):
        directory = tempfile.mkdtemp()
        self.addCleanup(lambda: [os.remove(os.path.join(directory, f)) for f in os.listdir(directory)]
                        and None or os.rmdir(directory))
        return os.path.join(directory, name)


class InterfaceTests(SynchronousTestCase, TempDirMixin):
    """
    Every source and sink provides its interface.
    """

    def test_interfaces(self):
        """
        L{verifyObject} accepts each class.
        """
        path = self.tempPath("a.wav")
        write_wav(path, b"\x00\x00" * 10)
        for source in (SilenceSource(), ToneSource(440), SequenceSource(), WavSource(path)):
            self.assertTrue(verifyObject(IAudioSource, source))
        recorder = WavRecorder(self.tempPath("b.wav"))
        self.addCleanup(recorder.close)
        for sink in (NullSink(), BufferSink(), recorder):
            self.assertTrue(verifyObject(IAudioSink, sink))


class SilenceTests(SynchronousTestCase):
    """
    L{SilenceSource}.
    """

    def test_frames(self):
        """
        Reads return zero samples of the requested size, forever.
        """
        source = SilenceSource()
        for _ in range(3):
            self.assertEqual(source.read(160), bytes(320))
        self.assertEqual(source.read(80), bytes(160))

    def test_duration(self):
        """
        With a duration, it ends after that much audio.
        """
        source = SilenceSource(duration=0.04)
        self.assertEqual([source.read(160) is None for _ in range(3)], [False, False, True])


class ToneTests(SynchronousTestCase):
    """
    L{ToneSource}.
    """

    def test_waveform(self):
        """
        Samples follow amplitude * sin(2 pi f n / 8000).
        """
        source = ToneSource(1000, amplitude=10000)
        got = samples(source.read(160))
        want = [round(10000 * math.sin(2 * math.pi * 1000 * n / 8000)) for n in range(160)]
        self.assertEqual(got, want)

    def test_phase_continuous(self):
        """
        Consecutive reads of odd sizes continue the same waveform: reading
        in pieces equals reading at once, for a period-table tone and for a
        frequency whose period is too long to tabulate.
        """
        for hz in (440, 350, 1234.5678):
            whole = ToneSource(hz).read(997)
            source = ToneSource(hz)
            pieces = b"".join(source.read(n) for n in (160, 7, 330, 500))
            self.assertEqual(pieces, whole, hz)

    def test_read_longer_than_period(self):
        """
        A read longer than the waveform's period wraps correctly.
        """
        source = ToneSource(2000)  # period: 4 samples
        self.assertEqual(source.read(3), ToneSource(2000).read(3))
        data = samples(source.read(10))
        self.assertEqual(data, samples(ToneSource(2000).read(13))[3:])

    def test_duration(self):
        """
        A tone with a duration ends.
        """
        source = ToneSource(440, duration=0.02)
        self.assertIsNotNone(source.read(160))
        self.assertIsNone(source.read(160))

    def test_validation(self):
        """
        Frequencies outside 0-4000 Hz and amplitudes beyond 16 bits are
        refused.
        """
        self.assertRaises(ValueError, ToneSource, 0)
        self.assertRaises(ValueError, ToneSource, 4000)
        self.assertRaises(ValueError, ToneSource, 440, amplitude=40000)


class SequenceTests(SynchronousTestCase):
    """
    L{SequenceSource}.
    """

    def test_beep_then_silence(self):
        """
        A 30 ms beep then 20 ms of silence: the middle frame is half tone,
        half silence; then the sequence ends.
        """
        source = SequenceSource(ToneSource(1000, duration=0.03), SilenceSource(duration=0.02))
        first = source.read(160)
        second = source.read(160)
        self.assertEqual(first, ToneSource(1000).read(160))
        self.assertNotEqual(second[:160], bytes(160))
        self.assertEqual(second[160:], bytes(160))
        self.assertIsNotNone(source.read(160))
        self.assertIsNone(source.read(160))

    def test_empty(self):
        """
        An empty sequence has ended already.
        """
        self.assertIsNone(SequenceSource().read(160))


class WavSourceTests(SynchronousTestCase, TempDirMixin):
    """
    L{WavSource}.
    """

    def test_8k_loop(self):
        """
        An 8 kHz file is played as is, looping by default.
        """
        path = self.tempPath("a.wav")
        pcm = struct.pack("<5h", 1, 2, 3, 4, 5)
        write_wav(path, pcm)
        source = WavSource(path)
        self.assertEqual(samples(source.read(3)), [1, 2, 3])
        self.assertEqual(samples(source.read(4)), [4, 5, 1, 2])
        self.assertEqual(samples(source.read(8)), [3, 4, 5, 1, 2, 3, 4, 5])

    def test_no_loop_pads_then_ends(self):
        """
        Without looping, the last frame is padded with silence and the next
        read returns C{None}.
        """
        path = self.tempPath("a.wav")
        write_wav(path, struct.pack("<3h", 7, 8, 9))
        source = WavSource(path, loop=False)
        self.assertEqual(samples(source.read(2)), [7, 8])
        self.assertEqual(samples(source.read(2)), [9, 0])
        self.assertIsNone(source.read(2))

    def test_extensible_pcm(self):
        """
        WAVE_FORMAT_EXTENSIBLE with the PCM sub-format is accepted.
        """
        path = self.tempPath("a.wav")
        write_wav(path, struct.pack("<2h", 100, -100), extensible=True)
        self.assertEqual(samples(WavSource(path).read(2)), [100, -100])

    def test_16k_is_decimated(self):
        """
        A 16 kHz file is low-passed and decimated: a 500 Hz tone keeps its
        amplitude, a 7 kHz tone (above the new Nyquist) is strongly
        attenuated, and the length halves.
        """
        def tone(hz, n):
            return struct.pack("<%dh" % n, *(round(10000 * math.sin(2 * math.pi * hz * i / 16000))
                                              for i in range(n)))

        path = self.tempPath("low.wav")
        write_wav(path, tone(500, 1600), rate=16000)
        low = WavSource(path, loop=False)
        self.assertAlmostEqual(low.duration, 0.1)
        peak = max(abs(s) for s in samples(low.read(800))[10:-10])
        self.assertTrue(9000 < peak <= 10100, peak)
        write_wav(path, tone(7000, 1600), rate=16000)
        high = samples(WavSource(path, loop=False).read(800))[10:-10]
        self.assertLess(max(abs(s) for s in high), 1500)

    def test_decimation_paths_agree(self):
        """
        The numpy and pure-Python decimators give identical bytes, including
        at the edges and with clipping.
        """
        pcm = struct.pack("<9h", 32767, 32767, 32767, -32768, -32768, 5, -5, 1000, 3)
        pure = wav.decimate_16k_to_8k(pcm, use_numpy=False)
        self.assertEqual(len(pure), 10)
        if wav._np is not None:
            self.assertEqual(wav.decimate_16k_to_8k(pcm, use_numpy=True), pure)
        # tap check at index 2: (-1*x[-1] + 0 + 9*x[1] + 16*x[2] + 9*x[3] + 0 - x[5]) / 32
        expected = (9 * 32767 + 16 * 32767 + 9 * -32768 - 5 + 16) >> 5
        self.assertEqual(samples(pure)[1], expected)

    def test_rejects_other_formats(self):
        """
        Stereo, 8-bit, 44.1 kHz, mu-law, non-RIFF and truncated files are
        refused with a message saying what is wrong.
        """
        path = self.tempPath("bad.wav")
        cases = [
            (dict(channels=2), "2 channel"),
            (dict(bits=8), "8-bit"),
            (dict(rate=44100), "44100 Hz"),
            (dict(tag=7, bits=8), "mu-law"),
        ]
        for kwargs, message in cases:
            write_wav(path, b"\x00" * 16, **kwargs)
            error = self.assertRaises(wav.WavFormatError, WavSource, path)
            self.assertIn(message, str(error))
        with open(path, "wb") as f:
            f.write(b"ID3 not a wav file")
        self.assertIn("RIFF", str(self.assertRaises(wav.WavFormatError, WavSource, path)))
        with open(path, "wb") as f:
            f.write(b"RIFF\x10\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00")
        self.assertRaises(wav.WavFormatError, WavSource, path)


class WavRecorderTests(SynchronousTestCase, TempDirMixin):
    """
    L{WavRecorder}.
    """

    def test_records_and_fixes_header(self):
        """
        Frames written come back from the file, whose header gives the
        right sizes after close.
        """
        path = self.tempPath("rec.wav")
        recorder = WavRecorder(path)
        frames = [bytes([i]) * 320 for i in range(3)]
        for frame in frames:
            recorder.write(frame)
        recorder.close()
        recorder.close()  # idempotent
        rate, channels, bits, pcm = wav.read_wav(path)
        self.assertEqual((rate, channels, bits), (8000, 1, 16))
        self.assertEqual(pcm, b"".join(frames))
        with open(path, "rb") as f:
            header = f.read(44)
        self.assertEqual(struct.unpack_from("<I", header, 4)[0], 36 + 960)
        self.assertEqual(struct.unpack_from("<I", header, 40)[0], 960)

    def test_max_seconds(self):
        """
        Nothing beyond C{max_seconds} is written; C{full} says so.
        """
        path = self.tempPath("rec.wav")
        recorder = WavRecorder(path, max_seconds=0.05)  # 400 samples
        for _ in range(5):
            recorder.write(bytes(320))
        self.assertTrue(recorder.full)
        self.assertEqual(recorder.seconds, 0.05)
        recorder.close()
        recorder.write(bytes(320))  # after close: ignored
        self.assertEqual(len(wav.read_wav(path)[3]), 800)

    def test_round_trip_through_source(self):
        """
        A recording plays back through L{WavSource}.
        """
        path = self.tempPath("rec.wav")
        recorder = WavRecorder(path)
        tone = ToneSource(440).read(160)
        recorder.write(tone)
        recorder.close()
        self.assertEqual(WavSource(path, loop=False).read(160), tone)


class SinkTests(SynchronousTestCase):
    """
    L{NullSink} and L{BufferSink}.
    """

    def test_buffer_sink(self):
        """
        L{BufferSink} keeps the frames and notes the close.
        """
        sink = BufferSink()
        sink.write(b"ab")
        sink.write(b"cd")
        sink.close()
        self.assertEqual(sink.pcm, b"abcd")
        self.assertTrue(sink.closed)

    def test_null_sink(self):
        """
        L{NullSink} accepts and forgets.
        """
        sink = NullSink()
        self.assertIsNone(sink.write(b"x" * 320))
        self.assertIsNone(sink.close())
