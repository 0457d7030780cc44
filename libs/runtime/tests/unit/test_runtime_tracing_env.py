"""setup_tracing follows the standard OpenTelemetry variables."""

from __future__ import annotations

import logging
import os

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from accord.runtime import tracing
from accord.runtime.instrumentation import SqlUnderASpan, uninstrument_libraries


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OTEL_* variable of the machine running the tests leaks in; no global provider set."""
    for name in list(os.environ):
        if name.startswith("OTEL_") or name == "ACCORD_TRACE_CONSOLE":
            monkeypatch.delenv(name)
    monkeypatch.setattr(trace, "set_tracer_provider", lambda provider: None)
    # setup_tracing decides whether consumer spans are recorded: undone after each test.
    monkeypatch.setattr(tracing, "_recording", True)


def _endpoint(exporter: object) -> str:
    assert isinstance(exporter, OTLPSpanExporter)
    endpoint: str = vars(exporter)["_endpoint"]  # private: the exporter has no accessor
    return endpoint


def _exporters(provider: TracerProvider) -> list[object]:
    processors = vars(vars(provider)["_active_span_processor"])["_span_processors"]
    return [vars(vars(p)["_batch_processor"])["_exporter"] for p in processors]


def test_nothing_is_exported_without_variables() -> None:
    assert tracing.span_exporters() == []


def test_the_otlp_endpoint_exports_over_http_to_its_traces_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    [exporter] = tracing.span_exporters()
    assert _endpoint(exporter) == "http://collector:4318/v1/traces"


def test_the_traces_endpoint_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:9999/traces")
    [exporter] = tracing.span_exporters()
    assert _endpoint(exporter) == "http://collector:9999/traces"


def test_otlp_as_the_traces_exporter_goes_to_the_default_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    [exporter] = tracing.span_exporters()
    assert _endpoint(exporter) == "http://localhost:4318/v1/traces"


def test_none_exports_nothing_even_with_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert tracing.span_exporters() == []


def test_console_and_otlp_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp, console")
    kinds = {type(e) for e in tracing.span_exporters()}
    assert kinds == {OTLPSpanExporter, ConsoleSpanExporter}


def test_accord_trace_console_still_prints_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCORD_TRACE_CONSOLE", "1")
    [exporter] = tracing.span_exporters()
    assert isinstance(exporter, ConsoleSpanExporter)


@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"]
)
def test_grpc_is_refused_in_one_log_line_and_nothing_is_exported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, variable: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")
    monkeypatch.setenv(variable, "grpc")
    with caplog.at_level(logging.WARNING, logger=tracing.__name__):
        assert tracing.span_exporters() == []
    [record] = caplog.records
    assert "'grpc'" in record.getMessage()
    assert "http/protobuf" in record.getMessage()


def test_http_protobuf_may_be_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    [exporter] = tracing.span_exporters()
    assert isinstance(exporter, OTLPSpanExporter)


def test_an_unknown_exporter_is_named_in_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with caplog.at_level(logging.WARNING, logger=tracing.__name__):
        assert tracing.span_exporters() == []
    assert "zipkin" in caplog.text


def test_the_service_is_named_after_accord_by_default() -> None:
    provider = tracing.setup_tracing("orchestrator")
    assert provider.resource.attributes["service.name"] == "accord-orchestrator"
    assert _exporters(provider) == []


def test_otel_service_name_overrides_the_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "idm-orchestrator")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
    resource = tracing.setup_tracing("orchestrator").resource
    assert resource.attributes["service.name"] == "idm-orchestrator"
    assert resource.attributes["deployment.environment"] == "test"


def test_service_name_in_resource_attributes_counts_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=idm")
    assert tracing.setup_tracing("authz").resource.attributes["service.name"] == "idm"


def test_the_sampler_variables_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    sampler = tracing.setup_tracing("auditor").sampler
    assert isinstance(sampler, ParentBased)
    root = vars(sampler)["_root"]  # private: ParentBased has no accessor
    assert isinstance(root, TraceIdRatioBased)
    assert root.rate == 0.25


def test_the_default_sampler_follows_the_parent() -> None:
    sampler = tracing.setup_tracing("auditor").sampler
    assert isinstance(sampler, ParentBased)
    assert not isinstance(sampler, TraceIdRatioBased)


def test_setup_installs_the_endpoints_exporter_in_a_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    provider = tracing.setup_tracing("provisioner")
    try:
        [exporter] = _exporters(provider)
        assert _endpoint(exporter) == "http://collector:4318/v1/traces"
    finally:
        provider.shutdown()


def test_sql_and_http_are_instrumented_only_when_spans_go_somewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sql, http = SqlUnderASpan(), HTTPXClientInstrumentor()  # type: ignore[no-untyped-call]
    uninstrument_libraries()
    try:
        tracing.setup_tracing("provisioner")
        assert not sql.is_instrumented_by_opentelemetry
        assert not http.is_instrumented_by_opentelemetry
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
        tracing.setup_tracing("provisioner")
        assert sql.is_instrumented_by_opentelemetry
        assert http.is_instrumented_by_opentelemetry
    finally:
        uninstrument_libraries()


def test_consumer_spans_are_recorded_only_when_spans_go_somewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tracing.setup_tracing("auditor")
    assert not tracing.recording()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    try:
        tracing.setup_tracing("auditor")
        assert tracing.recording()
    finally:
        uninstrument_libraries()
