package authority

import (
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// totpOpts are the RFC 6238 parameters: 30-second steps, 6 digits, SHA-1 — what every
// authenticator app understands.
var totpOpts = totp.ValidateOpts{Period: 30, Skew: 0, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// checkTOTP checks a code against the current step and the one before and after (clock
// drift), and returns the step it matched.
func checkTOTP(secret, code string, now time.Time) (int64, bool) {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if len(code) != 6 {
		return 0, false
	}
	step := now.Unix() / int64(totpOpts.Period)
	for _, d := range []int64{0, -1, 1} {
		t := time.Unix((step+d)*int64(totpOpts.Period), 0)
		if ok, err := totp.ValidateCustom(code, secret, t, totpOpts); err == nil && ok {
			return step + d, true
		}
	}
	return 0, false
}
