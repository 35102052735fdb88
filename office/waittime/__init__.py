"""The wait-time predictor (docs/waittime.md): public event-log records in, for every waiting
ticket the expected wait until its first call and its 10th–90th percentile range out.

`records` reads the log, `floor` replays a day, `learn` fits an office's figures from past days
(`params`), `forecast` plays the counters forward, `calibrate` corrects it from past days,
`predictors` holds it and the baselines, `replay` drives days and training, `score` and `table`
are for evaluation. Pure: no I/O, no clock.
"""

from office.waittime.floor import Floor
from office.waittime.predictors import PREDICTORS, Prediction, Predictor
from office.waittime.records import RecordError, read_record
from office.waittime.replay import Issued, replay, split_days, train

__all__ = [
    "PREDICTORS",
    "Floor",
    "Issued",
    "Prediction",
    "Predictor",
    "RecordError",
    "read_record",
    "replay",
    "split_days",
    "train",
]
