"""The stream worker: Spark Structured Streaming from the Kafka topics into the warehouse."""
