"""Lambda handlers: thin edges that build settings and clients, then call the core.

- ``chunk_router``: S3 ``ObjectCreated`` (directly or through SQS) -> chunk events in Kinesis.
- ``register``: a student's registration photo -> the face collection.
- ``collection_resource``: CloudFormation custom resource - the Rekognition face collection.

``lambdas.event_source`` runs a handler from an SQS queue locally, the way
Lambda's SQS event source mapping does in AWS.
"""
