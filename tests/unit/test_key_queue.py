import threading

from provisioner.reconciler.key_queue import KeyQueue


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_key_queued_many_times_is_reconciled_once():
    queue = KeyQueue()
    for _ in range(50):
        queue.add("ns/a")
    queue.add("ns/b")
    assert {queue.get(0.1), queue.get(0.1)} == {"ns/a", "ns/b"}
    assert queue.get(0.01) is None


def test_a_delayed_key_is_not_handed_out_before_it_is_due():
    clock = FakeClock()
    queue = KeyQueue(clock)
    queue.add("ns/a", delay=5.0)
    assert queue.get(0.0) is None
    clock.now = 5.0
    assert queue.get(0.0) == "ns/a"


def test_an_immediate_request_overrides_a_debounced_one():
    clock = FakeClock()
    queue = KeyQueue(clock)
    queue.add("ns/a", delay=5.0)
    queue.add("ns/a")
    assert queue.get(0.0) == "ns/a"
    assert len(queue) == 0


def test_a_waiting_consumer_wakes_when_a_key_arrives():
    queue = KeyQueue()
    got = []
    consumer = threading.Thread(target=lambda: got.append(queue.get(5.0)))
    consumer.start()
    queue.add("ns/a")
    consumer.join(timeout=5)
    assert got == ["ns/a"]
