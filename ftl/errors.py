"Errors a user can act on: each names the problem and the fix; the CLI prints them as one line, without a traceback"

__all__ = ['UserError', 'ConfigError', 'DataError', 'DatasetMissing', 'WeightsUnavailable', 'ResultsError']

class UserError(Exception): "Bad input or a missing resource, not a bug: the message says what to change"
class ConfigError(UserError, ValueError): "A setting outside its allowed values"
class DataError(UserError, ValueError): "A dataset that cannot be used as it is (unreadable images, empty or tiny classes, missing splits)"
class DatasetMissing(UserError, FileNotFoundError): "A dataset that is not where it was looked for"
class WeightsUnavailable(UserError, RuntimeError): "Pretrained weights for an architecture could not be had"
class ResultsError(UserError, OSError): "A results folder that cannot be written"
