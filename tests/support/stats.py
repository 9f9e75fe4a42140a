"""The one percentile every benchmark and test reports, so that their figures compare."""
import statistics


def percentile(values: list[float], percent: int) -> float:
    """The ``percent``-th percentile (1 to 99) of ``values``, interpolated between the measured ones.

    ``statistics.quantiles`` with the "inclusive" method treats the values as
    the whole population measured, so the 99th percentile of 100 timings lies
    between the two slowest instead of beyond the slowest.
    """
    if not 1 <= percent <= 99:
        raise ValueError("percent must be from 1 to 99, not {!r}".format(percent))
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]
