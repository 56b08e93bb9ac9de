package main

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// rateFlag is a rate given with its unit: "N/s", "N/min" or "N/h" (a bare N is per second),
// or "off" (or 0) for no limit, which is an infinite rate.
type rateFlag struct {
	perSecond float64
	text      string
}

func (r *rateFlag) String() string { return r.text }

func (r *rateFlag) Set(v string) error {
	v = strings.TrimSpace(v)
	if v == "off" || v == "0" {
		r.perSecond, r.text = math.Inf(1), v
		return nil
	}
	num, unit, _ := strings.Cut(v, "/")
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n <= 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return errors.New("want a positive rate such as 10/s, 1/min or 30/h, or off")
	}
	switch unit {
	case "", "s":
	case "min":
		n /= 60
	case "h":
		n /= 3600
	default:
		return errors.New("the unit of a rate is s, min or h")
	}
	r.perSecond, r.text = n, v
	return nil
}
