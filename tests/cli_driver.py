"""`python tests/cli_driver.py '[[args], ...]'`: `experiments.py` run as `__main__` with each argument list in turn, in this one
interpreter (started and imported once, not once a command); prints a JSON list of {args, returncode, stdout, stderr}, the
exit status and streams separate runs would give"""
import contextlib, io, json, runpy, sys, traceback

def main(calls):
    out = []
    for args in calls:
        sys.argv, so, se = ['experiments.py', *args], io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
            try: runpy.run_path('experiments.py', run_name='__main__'); rc = 0
            except SystemExit as e:  # as the interpreter ends a script: an int is the status, anything else is printed, status 1
                rc = e.code if isinstance(e.code, int) else 0 if e.code is None else (print(e.code, file=sys.stderr) or 1)
            except BaseException: traceback.print_exc(); rc = 1
        out.append(dict(args=args, returncode=rc, stdout=so.getvalue(), stderr=se.getvalue()))
    return out

if __name__ == '__main__': print(json.dumps(main(json.loads(sys.argv[1]))))
