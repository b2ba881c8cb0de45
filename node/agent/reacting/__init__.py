"""Characters who live between visits: they react to what they hear.

- :mod:`~node.agent.reacting.stimuli`: which public envelopes concern our character (a
  context for it or for everyone, a ``speak`` or ``gesture`` to it, a ``move`` to its
  place) — pure;
- :mod:`~node.agent.reacting.restraint`: how often it may react (a per-hour limit, and a
  public exchange with one other character that rests after a few turns) — pure, takes
  ``now``;
- :mod:`~node.agent.reacting.reactor`: the trio loop that hears, pauses, asks the engine
  for one reaction (:meth:`node.agent.voice.EngineVoice.react`) and publishes it.
"""

from node.agent.reacting.reactor import Reactor
from node.agent.reacting.restraint import Restraint
from node.agent.reacting.stimuli import Stimulus, stimulus_of

__all__ = ["Reactor", "Restraint", "Stimulus", "stimulus_of"]
