"""The producer: turns recordings and scenarios into chunks and uploads them.

A student's browser uploads 5-second chunks, each a self-contained video file
(decodable on its own, starting with a keyframe). For load tests and the demo
the producer makes the same chunks from files:

- ``producer.chunking`` cuts a recording into self-contained MP4 chunks
  (copying packets when the keyframes allow it, re-encoding otherwise);
- ``producer.scenario`` reads a scenario file (segments of videos, photos and
  empty frames) and renders it into chunks, see ``docs/scenarios.md``;
- ``producer.replay`` uploads the chunks of one or many simulated students,
  and ``producer.cli`` is what ``proctor replay`` runs.
"""
