package authority

import "log/slog"

// failureLog logs the first of a run of failures and the success that ends it.
type failureLog struct {
	log               *slog.Logger
	failed, recovered string
	failing           bool
}

func (f *failureLog) report(err error) {
	switch {
	case err != nil && !f.failing:
		f.failing = true
		f.log.Error(f.failed+"; logged once until it works again", "err", err)
	case err == nil && f.failing:
		f.failing = false
		f.log.Info(f.recovered)
	}
}
