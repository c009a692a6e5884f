"""
The interfaces an application or an embedder implements or receives.

Audio crosses the media layer as 16-bit signed little-endian linear PCM at
8000 samples per second, mono ("slin16 at 8 kHz").  A 20 ms frame is 160
samples, 320 bytes.
"""

from zope.interface import Attribute, Interface


class IAudioSource(Interface):
    """
    Something that produces audio for a call, pulled one frame at a time by
    the media clock.
    """

    def read(samples):
        """
        Return the next C{samples} samples as slin16 bytes (C{2 * samples}
        bytes), or C{None} when the source has ended.  Never blocks.
        """


class IAudioSink(Interface):
    """
    Something that consumes the audio a call receives.
    """

    def write(pcm):
        """
        Take one frame of slin16 bytes, already decoded and de-jittered.
        Never blocks.
        """

    def close():
        """
        The call or the recording is over; flush and release resources.
        """


class ICallHandler(Interface):
    """
    An application: decides what happens to each incoming call.
    """

    def incomingCall(call):
        """
        A new call has arrived.  C{call} is a L{rvoip_twisted.call.Call} in
        the C{"incoming"} state; the handler rings, answers or rejects it,
        now or later.  The return value may be a Deferred or a coroutine; a
        failure is logged and, if the call is still unanswered, answered
        500.
        """


class ICall(Interface):
    """
    One call, incoming or outgoing, as the application sees it.
    """

    state = Attribute(
        "One of 'incoming', 'calling', 'ringing', 'answered', 'ended'."
    )
    call_id = Attribute("The SIP Call-ID.")
    remote_uri = Attribute("The URI of the other party (a str).")
    ended = Attribute("A Deferred that fires with the end reason when the call ends.")

    def ring():
        """Send 180 Ringing (incoming calls only)."""

    def answer():
        """Answer with 200 OK and an SDP answer; returns a Deferred fired on ACK."""

    def reject(code=486, reason=None):
        """Reject an unanswered incoming call with a final response."""

    def hangup():
        """End the call: BYE when answered, CANCEL when ringing out."""

    def play(source):
        """Send audio from an L{IAudioSource}."""

    def record(sink):
        """Deliver received audio to an L{IAudioSink}."""

    def hold():
        """Put the call on hold with a re-INVITE (sendonly)."""

    def resume():
        """Take the call off hold with a re-INVITE (sendrecv)."""

    def send_dtmf(digits):
        """Send RFC 4733 telephone-events."""
