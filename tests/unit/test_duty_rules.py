"""Who new work of a cell goes to (server/domain/duty.py), worked by hand."""
from server.domain.duty import OFF_DUTY, ON_LEAVE, OVERLOADED, Candidate, choose, unavailable

LIMIT = 20


def worker(user_id, primary=False, on_duty=True, on_leave=False, open_tasks=0):
    return Candidate(user_id, primary, on_duty, on_leave, open_tasks)


def test_why_a_worker_is_given_no_new_work():
    assert unavailable(worker(1), LIMIT) is None
    assert unavailable(worker(1, on_duty=False, on_leave=True), LIMIT) == OFF_DUTY
    assert unavailable(worker(1, on_leave=True), LIMIT) == ON_LEAVE
    assert unavailable(worker(1, open_tasks=19), LIMIT) is None
    assert unavailable(worker(1, open_tasks=20), LIMIT) == OVERLOADED


def test_the_primary_first_even_when_busier_than_a_backup():
    assert choose([worker(5, open_tasks=3), worker(9, primary=True, open_tasks=19)], LIMIT).user_id == 9


def test_else_the_least_loaded_backup_then_the_lowest_id():
    cell = [worker(9, primary=True, on_leave=True), worker(7, open_tasks=4), worker(3, open_tasks=2),
            worker(2, open_tasks=2, on_duty=False), worker(4, open_tasks=2)]
    assert choose(cell, LIMIT).user_id == 3
    assert choose(cell[:2], LIMIT).user_id == 7


def test_nobody_available_or_nobody_at_all():
    assert choose([worker(1, primary=True, open_tasks=20), worker(2, on_duty=False)], LIMIT) is None
    assert choose([], LIMIT) is None
