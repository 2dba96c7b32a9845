"""``bench.time_to_picture``'s criterion and recorder (issue 25): what "finished" means, and that a
route ends at its first finished iterate of the final scale (no timing here: timing lives in bench/)."""

import pytest

from bench.routes import Finished, Recorder, is_finished

REF = {"total": 100.0, "content": 60.0, "style": 40.0, "tv": 0.0}


@pytest.mark.parametrize(
    "terms, finished",
    [
        ({"total": 105.0, "content": 63.0, "style": 42.0}, True),  # 5 % above, same balance
        ({"total": 105.1, "content": 63.0, "style": 42.1}, False),  # above 1.05·L_ref
        ({"total": 100.0, "content": 70.0, "style": 30.0}, False),  # lower style: another look
        ({"total": 100.0, "content": 50.0, "style": 50.0}, False),  # content 17 % below
        ({"total": 95.0, "content": 54.0, "style": 41.0}, True),  # below L_ref, within 15 %
        ({"total": float("nan"), "content": 60.0, "style": 40.0}, False),
    ],
)
def test_finished_needs_the_loss_and_the_balance_of_the_reference(terms, finished):
    assert is_finished(terms, REF) is finished


def test_the_recorder_stops_at_the_first_finished_iterate_of_the_final_scale():
    rec = Recorder(REF)
    rec.start()
    counter = type("Obj", (), {"evaluations": 0})()
    counter.evaluations = 3
    rec.record(counter, {"total": 90.0, "content": 55.0, "style": 35.0}, False, 0)  # coarse scale
    counter.evaluations = 5
    rec.record(counter, {"total": 200.0, "content": 60.0, "style": 140.0}, True, 1)
    counter.evaluations = 7
    with pytest.raises(Finished):
        rec.record(counter, {"total": 104.0, "content": 62.0, "style": 42.0}, True, 1)
    assert rec.first_finished["evaluations"] == 7 and len(rec.rows) == 3
    going = Recorder(REF, keep_going=True)
    going.start()
    going.record(counter, {"total": 104.0, "content": 62.0, "style": 42.0}, True, 0)
    going.record(counter, {"total": 101.0, "content": 61.0, "style": 40.0}, True, 0)
    assert going.first_finished is going.rows[0] and len(going.rows) == 2
