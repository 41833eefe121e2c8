{{/*
The operator's API calls, as RBAC rules. Keep in step with operator/src/rbac.rs (API_CALLS):
operator/tests/chart.rs renders this chart and fails on any difference, in either direction.
*/}}

{{/* Calls on objects in the watched namespaces. */}}
{{- define "hrl.rules.watched" -}}
- apiGroups: ["hrl.dev"]
  resources: ["headerratelimits"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
- apiGroups: ["hrl.dev"]
  resources: ["headerratelimits/status"]
  verbs: ["patch"]
- apiGroups: ["extensions.istio.io"]
  resources: ["wasmplugins"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* Leader election, in the release namespace. */}}
{{- define "hrl.rules.leaderElection" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "update"]
{{- end }}
