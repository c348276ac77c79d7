"""The local stack is wired as a deployment is: the README's callback line, a DLQ with a redrive policy."""

from __future__ import annotations

import json

from litellm_mlflow.local import wiring


def test_the_proxy_config_names_the_callback_as_the_readme_does() -> None:
    config = wiring.proxy_config()
    assert config["litellm_settings"]["callbacks"] == "litellm_mlflow.callback.sqs_logger"
    assert {model["model_name"] for model in config["model_list"]} >= {"gpt-4o-mini", "flaky", "tools"}
    assert "callbacks" not in wiring.proxy_config(callbacks=None)["litellm_settings"]


def test_the_queue_redrives_to_its_dlq_and_depth_counts_in_flight_messages(sqs_queue) -> None:
    sqs = sqs_queue.client
    queue_url, dlq_url = wiring.create_queues(sqs, visibility_timeout_s=30, max_receive_count=2)
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert (redrive["deadLetterTargetArn"], int(redrive["maxReceiveCount"])) == (dlq_arn, 2)
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1)
    assert wiring.queue_depth(sqs, queue_url) == 2
    sqs.send_message(QueueUrl=dlq_url, MessageBody="poison")
    assert [m["Body"] for m in wiring.peek_messages(sqs, dlq_url)] == ["poison"]
    assert [m["Body"] for m in wiring.peek_messages(sqs, dlq_url)] == ["poison"]  # peeking leaves it there
