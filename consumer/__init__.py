"""The Kinesis consumer: chunk events in, results, alerts and error records out.

- ``processor``: the record-processing core (one batch -> durable effects);
- ``worker``: reading the stream's shards and checkpointing after each batch.

Run it with ``proctor consume`` (the ECS task) or inside ``proctor up``.
"""
