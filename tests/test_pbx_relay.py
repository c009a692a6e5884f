"""
Tests for L{MediaSession.relay}, the media bridge of the PBX's B2BUA legs,
on the fake reactor and UDP ports of C{test_media_manager}.
"""

from rvoip_twisted.media import g711
from rvoip_twisted.media.sources import ToneSource
from rvoip_twisted.rtp.dtmf import dtmf_packets

from .test_media_manager import ManagerTestCase, offer_sdp, rtp_from_peer, rtp_sent

PEER_A = ("192.0.2.50", 30000)
PEER_B = ("192.0.2.60", 31000)


class RelayTests(ManagerTestCase):

    def bridge(self, b_formats="0 8 101"):
        manager = self.manager()
        a, _ = self.answered(manager, "leg-a", host=PEER_A[0], port=PEER_A[1])
        b, _ = self.answered(manager, "leg-b", host=PEER_B[0], port=PEER_B[1],
                             formats=b_formats)
        a.relay(b)
        self.reactor.sent(a.local_port).clear()
        self.reactor.sent(b.local_port).clear()
        return manager, a, b

    def test_payload_passes_both_ways(self):
        """A packet received on one leg goes out of the other at once, payload untouched, with
        that leg's SSRC and payload type, its own sequence base, and the marker on the first."""
        manager, a, b = self.bridge()
        payloads = [bytes([i + 1]) * 160 for i in range(3)]
        for i, payload in enumerate(payloads):
            self.reactor.deliver(a.local_port, rtp_from_peer(100 + i, payload), PEER_A)
        out = rtp_sent(self.reactor, b.local_port)
        self.assertEqual([p.payload for p, _ in out], payloads)
        self.assertEqual({addr for _, addr in out}, {PEER_B})
        self.assertEqual({p.ssrc for p, _ in out}, {b.ssrc})
        self.assertEqual({p.payload_type for p, _ in out}, {0})
        self.assertEqual([p.marker for p, _ in out], [True, False, False])
        seqs = [p.sequence_number for p, _ in out]
        self.assertEqual(seqs, [(seqs[0] + i) & 0xFFFF for i in range(3)])
        self.assertEqual([(p.timestamp - out[0][0].timestamp) & 0xFFFFFFFF for p, _ in out],
                         [0, 160, 320])
        # and back
        self.reactor.deliver(b.local_port, rtp_from_peer(7, b"\x11" * 160, ssrc=0x1234), PEER_B)
        [(back, addr)] = rtp_sent(self.reactor, a.local_port)
        self.assertEqual((back.payload, back.ssrc, addr), (b"\x11" * 160, a.ssrc, PEER_A))
        self.assertEqual(b.packets_sent, 3)

    def test_gaps_preserved(self):
        """A sequence and timestamp gap in the received stream stays a gap (loss remains
        visible to the far end)."""
        manager, a, b = self.bridge()
        self.reactor.deliver(a.local_port, rtp_from_peer(10), PEER_A)
        self.reactor.deliver(a.local_port, rtp_from_peer(13), PEER_A)
        first, second = [p for p, _ in rtp_sent(self.reactor, b.local_port)]
        self.assertEqual((second.sequence_number - first.sequence_number) & 0xFFFF, 3)
        self.assertEqual((second.timestamp - first.timestamp) & 0xFFFFFFFF, 480)

    def test_new_source_remapped(self):
        """A new SSRC on the received side continues our numbering and sets the marker."""
        manager, a, b = self.bridge()
        self.reactor.deliver(a.local_port, rtp_from_peer(10), PEER_A)
        self.reactor.deliver(a.local_port, rtp_from_peer(5000, ssrc=0x99), PEER_A)
        first, second = [p for p, _ in rtp_sent(self.reactor, b.local_port)]
        self.assertEqual((second.sequence_number - first.sequence_number) & 0xFFFF, 1)
        self.assertTrue(second.marker)

    def test_transcodes_when_codecs_differ(self):
        """PCMU received on one leg goes out as PCMA when the other leg negotiated PCMA."""
        manager, a, b = self.bridge(b_formats="8 101")
        pcm = ToneSource(500).read(160)
        self.reactor.deliver(a.local_port, rtp_from_peer(1, g711.ulaw_encode(pcm)), PEER_A)
        [(packet, _)] = rtp_sent(self.reactor, b.local_port)
        self.assertEqual(packet.payload_type, 8)
        self.assertEqual(packet.payload,
                         g711.alaw_encode(g711.ulaw_decode(g711.ulaw_encode(pcm))))

    def test_no_own_frames_while_relaying(self):
        """While relaying neither leg sends frames of its own (no silence); after
        relay(None) each goes back to its own frames."""
        manager, a, b = self.bridge()
        self.advance(0.2)
        self.assertEqual(rtp_sent(self.reactor, a.local_port), [])
        self.assertEqual(rtp_sent(self.reactor, b.local_port), [])
        a.relay(None)
        self.assertIsNone(b.relaying)
        self.advance(0.1)
        self.assertTrue(rtp_sent(self.reactor, a.local_port))
        self.assertTrue(rtp_sent(self.reactor, b.local_port))

    def test_dtmf_events_relayed(self):
        """RFC 4733 events pass as events with the other leg's telephone-event payload type;
        the receiving leg still reports the digit."""
        manager, a, b = self.bridge()
        digits = []
        a.on_dtmf = lambda digit, ms: digits.append(digit)
        seq = 20
        for _, marker, payload in dtmf_packets("5", 100):
            self.reactor.deliver(a.local_port, rtp_from_peer(seq, payload, pt=101, ts=8000,
                                                             marker=marker), PEER_A)
            seq += 1
        out = [p for p, _ in rtp_sent(self.reactor, b.local_port)]
        self.assertTrue(out)
        self.assertEqual({p.payload_type for p in out}, {101})
        self.assertEqual(digits, ["5"])

    def test_stop_unlinks(self):
        """Stopping one leg ends the bridge; the other goes back to its own frames."""
        manager, a, b = self.bridge()
        a.stop()
        self.assertIsNone(b.relaying)
        self.advance(0.1)
        self.assertTrue(rtp_sent(self.reactor, b.local_port))

    def test_relay_before_start(self):
        """A session bridged before it starts (late offer) does not join the media clock."""
        manager = self.manager()
        a, _ = self.answered(manager, "leg-a", host=PEER_A[0], port=PEER_A[1])
        late = manager.new_session("late")
        late.answer_offer(offer_sdp(host=PEER_B[0], port=PEER_B[1]))
        a.relay(late)
        late.start()
        self.advance(0.1)
        self.assertEqual(rtp_sent(self.reactor, late.local_port), [])

    def test_relay_to_self_refused(self):
        """A session cannot relay to itself; relaying anew replaces the old partner."""
        manager, a, b = self.bridge()
        self.assertRaises(ValueError, a.relay, a)
        c, _ = self.answered(manager, "leg-c")
        a.relay(c)
        self.assertIs(c.relaying, a)
        self.assertIsNone(b.relaying)
