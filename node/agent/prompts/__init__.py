"""The messages for one engine call, a module for each kind of call, and what they share:

- :mod:`~node.agent.prompts.visit_turn`: our next line in a visit (a plain roleplay
  prompt), and how the engine samples it;
- :mod:`~node.agent.prompts.recollection`: our memory of a visit, written after it, and
  the partner's tone;
- :mod:`~node.agent.prompts.answering_machine`: one short reply while we are away or
  asleep;
- :mod:`~node.agent.prompts.choosing`: whom to visit, from the characters online;
- :mod:`~node.agent.prompts.slots`: what the last three share (our persona, rules, and
  the partner's text in datamarked data slots);
- :mod:`~node.agent.prompts.views`: what every builder is given (our persona, the
  partner, what we keep about it) and the rules they all apply to it.

Trust, and where each kind of text goes:

- Trusted (the owner's own): the persona and the owner's notes. They go into the system
  message (notes are normalised and capped anyway).
- Ours but shaped by the partner: the memory summary our engine wrote after earlier
  visits, and our own earlier turns. The summary goes into the system message framed as
  memories, normalised, neutralised and capped; our turns are assistant messages.
- Untrusted (from the network): everything the partner said, its name and its card. None
  of it ever reaches a system message. In a visit turn the partner's speech is one
  normalised, capped, neutralised line (:func:`node.agent.spotlight.speech`) after its
  name, which is capped harder and replaced by a plain word when it looks like a role
  label; the card is not used. The summary, the answering machine and choosing, where
  our own instructions share a user message with partner text, keep it in data slots
  framed by a fresh datamark (:func:`node.agent.spotlight.enclose`). The visit turn has
  no such frame: measured on hostile lines the frame made no difference, and the output
  guard (:mod:`node.agent.guard`) checks every line before it is spoken.

Memory isolation: every builder takes the one partner it is about and at most that
partner's :class:`~node.agent.prompts.views.RelationView`; the two carry the partner's
PeerID and a mismatch raises :class:`~node.agent.prompts.views.CrossPartnerError`, so a
caller cannot put what we remember of X into a prompt for Y by passing the wrong row.
:func:`~node.agent.prompts.choosing.choose_messages` sees several partners but only their
names, tiers and visit counts, never a summary or a note.

Messages always alternate user/assistant after the system message and end with a user
message, because several servers' chat templates (Mistral, Gemma) reject anything else.
"""
