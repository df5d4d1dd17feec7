"ftl: transfer learning studies for image classification, a thin layer over fastai and timm"
import warnings
warnings.filterwarnings('ignore', message='.*torch.jit.script.* is deprecated', category=FutureWarning)
from .data import load_source, make_dls, make_datablock, subset_indices, StratifiedSubsetSplitter, labelled_test_dl
from .models import ARCHS, OFFLINE, ONLINE, get_arch, create_learner, weights_file, WeightsUnavailable
from .strategies import STRATEGIES
from .train import Config, PRESETS, run, build_learner, preset_config
from .evaluate import test_metrics
from .records import run_suite, load_records, read_records, save_record
from .analysis import interpret, failure_table
from .benchmark import benchmark_arch
__version__ = '0.1.0'
