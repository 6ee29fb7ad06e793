"""The bounded cache of fitted calculators and unpickled models."""

from perfwatch.recent import Recent


def test_keeps_the_newest_few_and_makes_each_once() -> None:
    made: list[int] = []
    cache: Recent[int] = Recent(size=2)

    def make(n: int) -> int:
        made.append(n)
        return n * 10

    assert [cache.get(n, lambda n=n: make(n)) for n in (1, 2, 1, 3, 1, 2)] == [
        10,
        20,
        10,
        30,
        10,
        20,
    ]
    assert made == [1, 2, 3, 2], "1 stayed (used again), 2 was dropped for 3 and made again"
    assert len(cache) == 2
