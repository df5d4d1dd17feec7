"ftl: transfer learning studies for image classification, a thin layer over fastai and timm"
import warnings
warnings.filterwarnings('ignore', message='.*torch.jit.script.* is deprecated', category=FutureWarning)
from .errors import UserError, ConfigError, DataError, DatasetMissing, WeightsUnavailable, ResultsError
from .data import (load_source, make_dls, make_datablock, subset_indices, StratifiedSubsetSplitter, labelled_test_dl, decode_image,
                   check_dataset_name, dataset_id, dataset_help, register_dataset)
from .datasets import load_card, card_of, tasks_of  # importing it registers the dataset sources
from .labels_table import read_table  # and a labels table (csv:)
from .arrays import from_arrays  # and arrays from a notebook (arrays:)
from .cards import Card
from .models import ARCHS, OFFLINE, ONLINE, get_arch, create_learner, weights_file
from .strategies import STRATEGIES, AUGMENTATIONS
from .config import Config, PRESETS, preset_config
from .train import build_learner, train, run, export
from .evaluate import test_metrics
from .records import Record, read_records, load_record, save_record, records_frame
from .analysis import interpret, failure_table
from .benchmark import benchmark_arch
from .studies import SUITES, Study, run_suite
__version__ = '0.3.0'
