"""The limits our figures are held to: the same work done by the tools of the part it runs on
(Kafka's own performance tools, a bare aiokafka producer), measured on the same broker."""
