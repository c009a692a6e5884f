"""
Tests for L{rvoip_twisted.media.codecs}.
"""

from twisted.trial.unittest import SynchronousTestCase

from rvoip_twisted.media import g711
from rvoip_twisted.media.codecs import (
    PCMA,
    PCMU,
    REGISTRY,
    TELEPHONE_EVENT,
    Codec,
    CodecRegistry,
    get_codec,
)
from rvoip_twisted.sdp import OfferAnswer


class RegistryTests(SynchronousTestCase):
    """
    Looking codecs up.
    """

    def test_default_registry(self):
        """
        PCMU, PCMA and telephone-event are registered, found by
        case-insensitive name and (for the audio ones) static PT.
        """
        self.assertIs(REGISTRY.get("pcmu"), PCMU)
        self.assertIs(REGISTRY.get("PCMA", 8000), PCMA)
        self.assertIsNone(REGISTRY.get("PCMA", 16000))
        self.assertIs(REGISTRY.get("Telephone-Event"), TELEPHONE_EVENT)
        self.assertIs(REGISTRY.by_static_payload_type(0), PCMU)
        self.assertIs(REGISTRY.by_static_payload_type(8), PCMA)
        self.assertIsNone(REGISTRY.by_static_payload_type(101))
        self.assertEqual(REGISTRY.names(), ["pcmu", "pcma", "telephone-event"])
        self.assertIs(get_codec("PCMU"), PCMU)
        self.assertRaises(KeyError, get_codec, "G729")

    def test_preferences(self):
        """
        A preference list follows the given order and adds telephone-event.
        """
        self.assertEqual(REGISTRY.preferences(["PCMA", "PCMU"]), [PCMA, PCMU, TELEPHONE_EVENT])
        self.assertEqual(REGISTRY.preferences(["PCMU"], dtmf=False), [PCMU])
        self.assertRaises(KeyError, REGISTRY.preferences, ["nope"])

    def test_new_codec_without_touching_sessions(self):
        """
        A codec registered at run time (here a fake wideband one at a
        dynamic PT) negotiates through SDP like the built-in ones.
        """
        fake = Codec(
            name="L16X", payload_type=97, clock_rate=16000,
            encode=lambda pcm: pcm, decode=lambda payload: payload,
        )
        registry = CodecRegistry([PCMU, fake, TELEPHONE_EVENT])
        self.assertIs(registry.get("l16x"), fake)
        oa = OfferAnswer("10.0.0.1", 4000, registry.preferences(["L16X", "PCMU"]))
        offer = oa.create_offer()
        self.assertIn("97 L16X/16000", offer.media[0].get_attributes("rtpmap"))


class CodecTests(SynchronousTestCase):
    """
    The codec values.
    """

    def test_g711_functions(self):
        """
        The registered functions are the G.711 ones.
        """
        pcm = bytes(range(256)) * 2
        self.assertEqual(PCMU.encode(pcm), g711.ulaw_encode(pcm))
        self.assertEqual(PCMA.decode(b"\xd5\x55"), g711.alaw_decode(b"\xd5\x55"))
        self.assertTrue(PCMU.is_audio)
        self.assertFalse(TELEPHONE_EVENT.is_audio)
        self.assertTrue(PCMA.static)
        self.assertFalse(TELEPHONE_EVENT.static)

    def test_silence_payload(self):
        """
        A silent 20 ms frame is 160 silence bytes, and decodes to zeros.
        """
        self.assertEqual(PCMU.silence_payload(), b"\xff" * 160)
        self.assertEqual(PCMA.silence_payload(80), b"\xd5" * 80)
        self.assertEqual(set(PCMU.decode(PCMU.silence_payload())), {0})

    def test_silence_payload_encoded(self):
        """
        A codec without a silence byte encodes a zero frame.
        """
        fake = Codec("X", 96, 8000, encode=lambda pcm: pcm[:4], decode=lambda p: p)
        self.assertEqual(fake.silence_payload(), b"\x00" * 4)

    def test_timestamp_increment(self):
        """
        20 ms at 8 kHz is 160 timestamp units.
        """
        self.assertEqual(PCMU.timestamp_increment(20), 160)
        self.assertEqual(PCMA.timestamp_increment(30), 240)
