{{/* Name of the chart, overridable. */}}
{{- define "hrl.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified name of the release's objects. */}}
{{- define "hrl.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "hrl.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "hrl.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hrl
{{- end }}

{{/* Labels that select the operator pods (immutable once installed). */}}
{{- define "hrl.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hrl.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* ServiceAccount the operator runs as. */}}
{{- define "hrl.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "hrl.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Name of the leader-election Lease. */}}
{{- define "hrl.leaseName" -}}
{{- default (include "hrl.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* Operator image reference: repository@digest when a digest is set, else repository:tag. */}}
{{- define "hrl.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The filter module: filter.url, or the filter released with this chart (its appVersion). */}}
{{- define "hrl.filterUrl" -}}
{{- default (printf "oci://ghcr.io/hrl-dev/hrl-filter:%s" .Chart.AppVersion) .Values.filter.url }}
{{- end }}

{{/*
Rules that values.schema.json cannot express across fields. Each failure names the values
involved and how to fix them.
*/}}
{{- define "hrl.validate" -}}
{{- include "hrl.validateRateLimitService" . }}
{{- if and (not .Values.filter.sha256) (not .Values.filter.allowUnpinned) }}
{{- fail "filter.sha256 is empty. Pin the filter module: set filter.sha256 to its image manifest digest (oci://) or the sha256 of plugin.wasm (http(s)://), so an edit of a policy never re-fetches the module and a registry outage cannot stop traffic. To run an unpinned module anyway, set filter.allowUnpinned=true." }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "replicaCount=%d needs leaderElection.enabled=true: without a Lease, every replica would write WasmPlugins and status at once. Set replicaCount=1 or enable leader election." (int .Values.replicaCount)) }}
{{- end }}
{{- if .Values.podDisruptionBudget.enabled }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if and (not (kindIs "invalid" $pdb.minAvailable)) (not (kindIs "invalid" $pdb.maxUnavailable)) }}
{{- fail "podDisruptionBudget: set only one of minAvailable and maxUnavailable (set the other to null)." }}
{{- end }}
{{- if and (kindIs "invalid" $pdb.minAvailable) (kindIs "invalid" $pdb.maxUnavailable) }}
{{- fail "podDisruptionBudget: set one of minAvailable or maxUnavailable." }}
{{- end }}
{{- if and (not (kindIs "invalid" $pdb.minAvailable)) (not (kindIs "string" $pdb.minAvailable)) (ge (int $pdb.minAvailable) (int .Values.replicaCount)) }}
{{- fail (printf "podDisruptionBudget.minAvailable=%d with replicaCount=%d would block every node drain. Raise replicaCount or lower minAvailable." (int $pdb.minAvailable) (int .Values.replicaCount)) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of the bundled rate limit service's objects (short: its FQDN goes into every
pluginConfig twice, and the filter takes at most 120 bytes for both). */}}
{{- define "hrl.ratelimit.name" -}}
{{- printf "%s-ratelimit" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the bundled rate limit service's pods (never the operator's). */}}
{{- define "hrl.ratelimit.selectorLabels" -}}
app.kubernetes.io/name: ratelimit
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels on the bundled rate limit service's objects. */}}
{{- define "hrl.ratelimit.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "hrl.ratelimit.selectorLabels" . }}
app.kubernetes.io/component: rate-limit-service
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hrl
{{- end }}

{{/* The bundled rate limit service's image: repository:tag@digest (the digest is required). */}}
{{- define "hrl.ratelimit.image" -}}
{{- $image := .Values.rateLimitService.bundled.image }}
{{- if $image.tag }}
{{- printf "%s:%s@%s" $image.repository $image.tag $image.digest }}
{{- else }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- end }}
{{- end }}

{{/* The rate limit service scope: Cluster policies use, FQDN:PORT: rateLimitService.address,
else the bundled Service when bundled.enabled, else empty (Cluster policies are then not
accepted). */}}
{{- define "hrl.rlsAddress" -}}
{{- if .Values.rateLimitService.address }}
{{- .Values.rateLimitService.address }}
{{- else if .Values.rateLimitService.bundled.enabled }}
{{- printf "%s.%s.svc.%s:8081" (include "hrl.ratelimit.name" .) .Release.Namespace .Values.rateLimitService.bundled.clusterDomain }}
{{- end }}
{{- end }}

{{/* Rules of rateLimitService that the values schema cannot express. */}}
{{- define "hrl.validateRateLimitService" -}}
{{- $rls := .Values.rateLimitService }}
{{- if $rls.bundled.enabled }}
{{- if $rls.address }}
{{- fail "rateLimitService.address and rateLimitService.bundled.enabled=true are both set: use an existing service (address) or the bundled one, not both." }}
{{- end }}
{{- if not $rls.bundled.image.digest }}
{{- fail "rateLimitService.bundled.image.digest is empty. Pin the envoyproxy/ratelimit image by digest (sha256:<64 hex>; for example `crane digest docker.io/envoyproxy/ratelimit:<tag>` or the digest your registry shows): the chart does not ship one it could not verify." }}
{{- end }}
{{- if not $rls.bundled.redisUrl }}
{{- fail "rateLimitService.bundled.redisUrl is empty. Set it to HOST:PORT of the Redis the bundled envoyproxy/ratelimit keeps its counts in, e.g. redis.hrl-system.svc.cluster.local:6379." }}
{{- end }}
{{- end }}
{{- $address := include "hrl.rlsAddress" . }}
{{- if $address }}
{{- $host := regexReplaceAll ":[0-9]+$" $address "" }}
{{- $port := regexReplaceAll "^.*:" $address "" }}
{{- $bytes := add (len (printf "outbound|%s||%s" $port $host)) (len $host) }}
{{- if gt (int $bytes) 120 }}
{{- fail (printf "rateLimitService: the service %s is too long for the filter: its cluster name outbound|%s||%s and the host take %d bytes together, at most 120. Use a shorter release, Service or namespace name." $address $port $host (int $bytes)) }}
{{- end }}
{{- end }}
{{- end }}
