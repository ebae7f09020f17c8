// psa-check evaluates pods against the Pod Security Standards with Kubernetes' own implementation
// (k8s.io/pod-security-admission/policy, the code the API server's PodSecurity admission plugin runs).
//
// Input (stdin): a JSON array of {"id", "level", "version", "metadata", "spec"}, one per pod template; level is
// privileged, baseline or restricted, version "latest" or "v1.N". Output (stdout): a JSON array of
// {"id", "allowed", "forbidden": [{"reason", "detail"}]} in the same order. Exit 2 on bad input.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

type request struct {
	ID       string            `json:"id"`
	Level    string            `json:"level"`
	Version  string            `json:"version"`
	Metadata metav1.ObjectMeta `json:"metadata"`
	Spec     corev1.PodSpec    `json:"spec"`
}

type forbidden struct {
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

type result struct {
	ID        string      `json:"id"`
	Allowed   bool        `json:"allowed"`
	Forbidden []forbidden `json:"forbidden"`
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "psa-check: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	var reqs []request
	// Unknown fields inside a pod spec are ignored, as the API server's decoder does; the object validation reports them.
	if err := json.NewDecoder(os.Stdin).Decode(&reqs); err != nil {
		fail("reading requests: %v", err)
	}
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks())
	if err != nil {
		fail("building the evaluator: %v", err)
	}
	out := make([]result, 0, len(reqs))
	for _, r := range reqs {
		level, err := api.ParseLevel(r.Level)
		if err != nil {
			fail("%s: level %q: %v (allowed: privileged, baseline, restricted)", r.ID, r.Level, err)
		}
		version, err := api.ParseVersion(r.Version)
		if err != nil {
			fail("%s: version %q: %v (allowed: latest or v1.N)", r.ID, r.Version, err)
		}
		res := result{ID: r.ID, Allowed: true, Forbidden: []forbidden{}}
		for _, c := range evaluator.EvaluatePod(api.LevelVersion{Level: level, Version: version}, &r.Metadata, &r.Spec) {
			if !c.Allowed {
				res.Allowed = false
				res.Forbidden = append(res.Forbidden, forbidden{Reason: c.ForbiddenReason, Detail: c.ForbiddenDetail})
			}
		}
		out = append(out, res)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail("writing results: %v", err)
	}
}
