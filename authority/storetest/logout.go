package storetest

import (
	"testing"
	"time"

	"github.com/id4me/id4me-registry/authority"
)

func sessionClient(sid, clientID string, expire time.Time) authority.SessionClient {
	return authority.SessionClient{SessionID: sid, ClientID: clientID, Subject: "sub-at-" + clientID, CreateTime: t0, ExpireTime: expire}
}

// claimAll claims every logout due at now, with a lease of an hour.
func claimAll(t *testing.T, s authority.Store, now time.Time) []authority.BackchannelLogout {
	t.Helper()
	got, err := s.ClaimBackchannelLogouts(t.Context(), now, time.Hour, 100)
	must(t, err)
	return got
}

// testBackchannelLogoutQueue: ending a session deletes it and queues one logout per client
// the session recorded, once; claims lease the logouts; a retry moves one on; the queue
// holds at most its bound.
func testBackchannelLogoutQueue(t *testing.T, s authority.Store) {
	ctx := t.Context()
	sess := newSession("cookie1", alice)
	must(t, s.CreateSession(ctx, sess))
	day := t0.Add(24 * time.Hour)
	must(t, s.PutSessionClient(ctx, sessionClient("sid1", "c1", day)))
	must(t, s.PutSessionClient(ctx, sessionClient("sid1", "c2", day)))
	// A login at c1 again in the session replaces its record.
	again := sessionClient("sid1", "c1", day)
	again.Subject = "sub-at-c1-again"
	must(t, s.PutSessionClient(ctx, again))
	must(t, s.PutSessionClient(ctx, sessionClient("sid2", "c1", day)))

	if got := claimAll(t, s, t0); len(got) != 0 {
		t.Fatalf("logouts queued before any session ended: %+v", got)
	}
	now := t0.Add(time.Hour)
	queued, dropped, err := s.EndSession(ctx, sess.IDHash, "sid1", now, 2*time.Hour, 10)
	must(t, err)
	if queued != 2 || dropped != 0 {
		t.Fatalf("EndSession = %d queued, %d dropped; want 2, 0", queued, dropped)
	}
	_, err = s.GetSession(ctx, sess.IDHash)
	wantErr(t, "GetSession after EndSession", err, authority.ErrNotFound)
	// The records went with the session: ending it again queues nothing more.
	queued, dropped, err = s.EndSession(ctx, sess.IDHash, "sid1", now, 2*time.Hour, 10)
	must(t, err)
	if queued != 0 || dropped != 0 {
		t.Fatalf("EndSession again = %d queued, %d dropped; want 0, 0", queued, dropped)
	}

	if got := claimAll(t, s, now.Add(-time.Second)); len(got) != 0 {
		t.Fatalf("logouts claimed before they were due: %+v", got)
	}
	got := claimAll(t, s, now)
	lease := now.Add(time.Hour)
	want := []authority.BackchannelLogout{
		{SessionID: "sid1", ClientID: "c1", Subject: "sub-at-c1-again", NextTime: norm(lease), CreateTime: norm(now), ExpireTime: norm(now.Add(2 * time.Hour))},
		{SessionID: "sid1", ClientID: "c2", Subject: "sub-at-c2", NextTime: norm(lease), CreateTime: norm(now), ExpireTime: norm(now.Add(2 * time.Hour))},
	}
	if len(got) == 2 && got[0].ClientID == "c2" {
		got[0], got[1] = got[1], got[0]
	}
	wantEqual(t, "ClaimBackchannelLogouts", got, want)
	// Leased: not claimed again until the lease ends.
	if got := claimAll(t, s, now.Add(time.Minute)); len(got) != 0 {
		t.Fatalf("leased logouts claimed again: %+v", got)
	}

	// A failed attempt moves the logout on; a sent one goes.
	retry := now.Add(10 * time.Minute)
	must(t, s.RetryBackchannelLogout(ctx, "sid1", "c1", 1, retry))
	must(t, s.DeleteBackchannelLogout(ctx, "sid1", "c2"))
	must(t, s.DeleteBackchannelLogout(ctx, "sid1", "c2"))
	wantErr(t, "RetryBackchannelLogout of a logout not queued", s.RetryBackchannelLogout(ctx, "sid1", "c2", 1, retry), authority.ErrNotFound)
	got = claimAll(t, s, retry)
	want[0].Attempts, want[0].NextTime = 1, norm(retry.Add(time.Hour))
	wantEqual(t, "ClaimBackchannelLogouts after a retry", got, want[:1])

	// The queue holds one logout; with a bound of two, a session of two clients queues one
	// and drops one.
	must(t, s.PutSessionClient(ctx, sessionClient("sid2", "c2", day)))
	queued, dropped, err = s.EndSession(ctx, hash("cookie2"), "sid2", now, 2*time.Hour, 2)
	must(t, err)
	if queued != 1 || dropped != 1 {
		t.Fatalf("EndSession at the queue's bound = %d queued, %d dropped; want 1, 1", queued, dropped)
	}

	// Queued logouts and session records go when they expire.
	must(t, s.PutSessionClient(ctx, sessionClient("sid3", "c1", t0.Add(time.Minute))))
	if _, err := s.DeleteExpired(ctx, now.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := claimAll(t, s, now.Add(3*time.Hour)); len(got) != 0 {
		t.Fatalf("expired logouts claimed: %+v", got)
	}
	queued, _, err = s.EndSession(ctx, hash("cookie3"), "sid3", now.Add(3*time.Hour), time.Hour, 10)
	must(t, err)
	if queued != 0 {
		t.Fatalf("an expired session record queued %d logouts", queued)
	}
}

// testRevokeAccessToken: a client revokes its own tokens only, once.
func testRevokeAccessToken(t *testing.T, s authority.Store) {
	ctx := t.Context()
	must(t, s.CreateClient(ctx, newClient("c1")))
	must(t, s.CreateGrant(ctx, newGrant("g1", "code1", "c1", alice)))
	at := newAccessToken("token1", "g1", alice)
	must(t, s.CreateAccessToken(ctx, at))

	wantErr(t, "RevokeAccessToken of a missing token", s.RevokeAccessToken(ctx, hash("token9"), "c1", t0), authority.ErrNotFound)
	wantErr(t, "RevokeAccessToken by another client", s.RevokeAccessToken(ctx, at.TokenHash, "c2", t0), authority.ErrNotFound)
	wantAccessToken(t, s, at)
	revoked := t0.Add(time.Minute)
	must(t, s.RevokeAccessToken(ctx, at.TokenHash, "c1", revoked))
	at.RevokeTime = revoked
	wantAccessToken(t, s, at)
	must(t, s.RevokeAccessToken(ctx, at.TokenHash, "c1", revoked.Add(time.Hour)))
	wantAccessToken(t, s, at)
}
