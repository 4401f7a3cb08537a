"""`prices refresh`: each source fetched from a local HTTP stand-in of its public API that checks
the requests (paths, filters, paging, the GCP key), answering in the APIs' documented shapes."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from finfocus.secrets import EnvironmentSecrets
from services.pricing import sources
from services.pricing.snapshot import PriceSnapshot


def _term(sku: str, price: str, unit: str, desc: str) -> dict:
    return {
        sku: {
            f"{sku}.JRTCKXETXF": {
                "offerTermCode": "JRTCKXETXF",
                "sku": sku,
                "effectiveDate": "2024-10-01T00:00:00Z",
                "priceDimensions": {
                    f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                        "rateCode": f"{sku}.JRTCKXETXF.6YS6EN2CT7",
                        "description": desc,
                        "beginRange": "0",
                        "endRange": "Inf",
                        "unit": unit,
                        "pricePerUnit": {"USD": price},
                    }
                },
            }
        }
    }


EC2 = {
    "formatVersion": "v1.0",
    "offerCode": "AmazonEC2",
    "version": "20241001000000",
    "publicationDate": "2024-10-01T00:00:00Z",
    "products": {
        "AAA": {
            "sku": "AAA",
            "productFamily": "Compute Instance",
            "attributes": {
                "regionCode": "us-east-1",
                "instanceType": "c5.large",
                "operatingSystem": "Linux",
                "tenancy": "Shared",
                "preInstalledSw": "NA",
                "capacitystatus": "Used",
                "usagetype": "BoxUsage:c5.large",
            },
        },
        "BBB": {
            "sku": "BBB",
            "productFamily": "Compute Instance",
            "attributes": {
                "regionCode": "us-east-1",
                "instanceType": "c5.large",
                "operatingSystem": "Windows",
                "tenancy": "Shared",
                "preInstalledSw": "NA",
                "capacitystatus": "Used",
            },
        },
        "CCC": {
            "sku": "CCC",
            "productFamily": "Storage",
            "attributes": {
                "regionCode": "us-east-1",
                "volumeApiName": "gp3",
                "usagetype": "EBS:VolumeUsage.gp3",
            },
        },
        "DDD": {
            "sku": "DDD",
            "productFamily": "System Operation",
            "attributes": {
                "regionCode": "us-east-1",
                "volumeApiName": "gp3",
                "usagetype": "EBS:VolumeP-IOPS.gp3",
            },
        },
        "EEE": {
            "sku": "EEE",
            "productFamily": "NAT Gateway",
            "attributes": {"regionCode": "us-east-1", "usagetype": "NatGateway-Hours"},
        },
    },
    "terms": {
        "OnDemand": {
            **_term(
                "AAA", "0.0850000000", "Hrs", "$0.085 per On Demand Linux c5.large Instance Hour"
            ),
            **_term(
                "BBB", "0.1770000000", "Hrs", "$0.177 per On Demand Windows c5.large Instance Hour"
            ),
            **_term(
                "CCC",
                "0.0800000000",
                "GB-Mo",
                "$0.08 per GB-month of General Purpose (gp3) provisioned storage",
            ),
            **_term(
                "DDD",
                "0.0050000000",
                "IOPS-Mo",
                "$0.005 per IOPS-month provisioned (gp3) above 3000",
            ),
            **_term("EEE", "0.0450000000", "Hrs", "$0.045 per NAT Gateway Hour"),
        }
    },
}
RDS = {
    "formatVersion": "v1.0",
    "offerCode": "AmazonRDS",
    "publicationDate": "2024-10-02T00:00:00Z",
    "products": {
        "FFF": {
            "sku": "FFF",
            "productFamily": "Database Instance",
            "attributes": {
                "regionCode": "us-east-1",
                "instanceType": "db.m5.large",
                "databaseEngine": "PostgreSQL",
                "deploymentOption": "Multi-AZ",
                "licenseModel": "No license required",
            },
        },
        "GGG": {
            "sku": "GGG",
            "productFamily": "Database Storage",
            "attributes": {
                "regionCode": "us-east-1",
                "volumeType": "Provisioned IOPS",
                "deploymentOption": "Multi-AZ",
                "databaseEngine": "PostgreSQL",
            },
        },
    },
    "terms": {
        "OnDemand": {
            **_term("FFF", "0.3560000000", "Hrs", "Multi-AZ db.m5.large PostgreSQL"),
            **_term("GGG", "0.2500000000", "GB-Mo", "Multi-AZ Provisioned IOPS storage"),
        }
    },
}
AZURE_PAGE_1 = {
    "BillingCurrency": "USD",
    "CustomerEntityId": "Default",
    "CustomerEntityType": "Retail",
    "Items": [
        {
            "currencyCode": "USD",
            "tierMinimumUnits": 0.0,
            "retailPrice": 0.0416,
            "unitPrice": 0.0416,
            "armRegionName": "eastus",
            "location": "US East",
            "effectiveStartDate": "2023-03-01T00:00:00Z",
            "meterName": "B2s",
            "productName": "Virtual Machines BS Series",
            "skuName": "B2s",
            "serviceName": "Virtual Machines",
            "unitOfMeasure": "1 Hour",
            "type": "Consumption",
            "armSkuName": "Standard_B2s",
        },
        {
            "currencyCode": "USD",
            "tierMinimumUnits": 0.0,
            "retailPrice": 0.0496,
            "armRegionName": "eastus",
            "meterName": "B2s",
            "productName": "Virtual Machines BS Series Windows",
            "skuName": "B2s",
            "serviceName": "Virtual Machines",
            "unitOfMeasure": "1 Hour",
            "type": "Consumption",
            "armSkuName": "Standard_B2s",
        },
        {
            "currencyCode": "USD",
            "tierMinimumUnits": 0.0,
            "retailPrice": 0.00832,
            "armRegionName": "eastus",
            "meterName": "B2s Spot",
            "productName": "Virtual Machines BS Series",
            "skuName": "B2s Spot",
            "serviceName": "Virtual Machines",
            "unitOfMeasure": "1 Hour",
            "type": "Consumption",
            "armSkuName": "Standard_B2s",
        },
    ],
    "NextPageLink": None,
    "Count": 3,
}
AZURE_PAGE_2 = {
    "Items": [
        {
            "currencyCode": "USD",
            "tierMinimumUnits": 0.0,
            "retailPrice": 19.71,
            "armRegionName": "eastus",
            "meterName": "P10 LRS Disk",
            "productName": "Premium SSD Managed Disks",
            "skuName": "P10 LRS",
            "serviceName": "Storage",
            "unitOfMeasure": "1/Month",
            "type": "Consumption",
            "armSkuName": "Premium_SSD_Managed_Disk_P10",
            "effectiveStartDate": "2024-01-01T00:00:00Z",
        },
    ],
    "NextPageLink": None,
    "Count": 1,
}


def _gcp_sku(desc: str, group: str, unit: str, nanos: int, regions: list[str]) -> dict:
    return {
        "name": f"services/6F81-5844-456A/skus/{desc[:4]}",
        "skuId": desc[:4],
        "description": desc,
        "category": {
            "serviceDisplayName": "Compute Engine",
            "resourceFamily": "Compute",
            "resourceGroup": group,
            "usageType": "OnDemand",
        },
        "serviceRegions": regions,
        "pricingInfo": [
            {
                "effectiveTime": "2024-10-03T12:00:00.000Z",
                "pricingExpression": {
                    "usageUnit": unit,
                    "displayQuantity": 1,
                    "tieredRates": [
                        {
                            "startUsageAmount": 0,
                            "unitPrice": {"currencyCode": "USD", "units": "0", "nanos": nanos},
                        }
                    ],
                },
            }
        ],
    }


class StandIn(BaseHTTPRequestHandler):
    seen: list[str] = []

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, body: dict, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        StandIn.seen.append(self.path)
        base = f"http://{self.headers['Host']}"
        if url.path == "/offers/v1.0/aws/AmazonEC2/current/us-east-1/index.json":
            return self._send(EC2)
        if url.path == "/offers/v1.0/aws/AmazonRDS/current/us-east-1/index.json":
            return self._send(RDS)
        if url.path == "/api/retail/prices":
            if q.get("page") == "2":
                return self._send(AZURE_PAGE_2)
            expected = "serviceName eq 'Virtual Machines' and armRegionName eq 'eastus' and priceType eq 'Consumption'"
            if q.get("$filter") != expected or q.get("currencyCode") != "USD":
                return self._send({"error": f"unexpected filter {q}"}, 400)
            return self._send({**AZURE_PAGE_1, "NextPageLink": f"{base}/api/retail/prices?page=2"})
        if url.path == "/v1/services/6F81-5844-456A/skus":
            if q.get("key") != "test-key":
                return self._send({"error": {"code": 403, "message": "API key not valid"}}, 403)
            if q.get("pageToken") == "p2":
                return self._send(
                    {
                        "skus": [
                            _gcp_sku(
                                "E2 Instance Ram running in Americas",
                                "RAM",
                                "GiBy.h",
                                2923000,
                                ["us-central1", "asia-east1"],
                            )
                        ],
                        "nextPageToken": "",
                    }
                )
            return self._send(
                {
                    "skus": [
                        _gcp_sku(
                            "E2 Instance Core running in Americas",
                            "CPU",
                            "h",
                            21811000,
                            ["us-central1", "us-east1"],
                        ),
                        {
                            **_gcp_sku(
                                "E2 Instance Core running in Americas",
                                "CPU",
                                "h",
                                6543000,
                                ["us-central1"],
                            ),
                            "category": {"usageType": "Preemptible"},
                        },
                    ],
                    "nextPageToken": "p2",
                }
            )
        return self._send({"error": f"unexpected request {self.path}"}, 404)


def _query_page(sku: str, product: dict, price: str, unit: str) -> str:
    term = _term(sku, price, unit, "query")[sku]
    return json.dumps(
        {
            "product": {**product, "sku": sku},
            "serviceCode": "AmazonEC2",
            "terms": {"OnDemand": term},
            "version": "20241001000000",
            "publicationDate": "2024-10-01T00:00:00Z",
        }
    )


def _do_post(self) -> None:
    """The Price List Query API (JSON 1.1 protocol): GetProducts with a regionCode filter, paged."""
    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
    StandIn.seen.append(
        f"POST {self.headers.get('X-Amz-Target')} {json.dumps(body, sort_keys=True)}"
    )
    if self.headers.get(
        "X-Amz-Target"
    ) != "AWSPriceListService.GetProducts" or "AWS4-HMAC-SHA256" not in self.headers.get(
        "Authorization", ""
    ):
        return self._send({"__type": "AccessDeniedException", "message": "unsigned"}, 400)
    if (
        body.get("Filters") != [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-east-1"}]
        or body["ServiceCode"] != "AmazonEC2"
    ):
        return self._send(
            {"__type": "InvalidParameterException", "message": f"unexpected {body}"}, 400
        )
    if body.get("NextToken") == "page-2":
        return self._send(
            {
                "FormatVersion": "aws_v1",
                "PriceList": [_query_page("CCC", EC2["products"]["CCC"], "0.0800000000", "GB-Mo")],
            }
        )
    return self._send(
        {
            "FormatVersion": "aws_v1",
            "NextToken": "page-2",
            "PriceList": [
                _query_page("AAA", EC2["products"]["AAA"], "0.0850000000", "Hrs"),
                _query_page("BBB", EC2["products"]["BBB"], "0.1770000000", "Hrs"),
            ],
        }
    )


StandIn.do_POST = _do_post


@pytest.fixture
def stand_in():
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    StandIn.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_aws_bulk_offer_files_become_a_snapshot_with_history(stand_in: str, tmp_path: Path):
    with httpx.Client(timeout=10) as client:
        report = sources.refresh(
            "aws",
            client,
            tmp_path,
            now=datetime(2024, 10, 5, tzinfo=UTC),
            services=["AmazonEC2", "AmazonRDS"],
            regions=["us-east-1"],
            base=stand_in,
        )
    assert StandIn.seen == [
        "/offers/v1.0/aws/AmazonEC2/current/us-east-1/index.json",
        "/offers/v1.0/aws/AmazonRDS/current/us-east-1/index.json",
    ]
    doc = json.loads((tmp_path / "aws.json").read_text())
    rows = {(r["service"], r["sku"]): r for r in doc["prices"]}
    assert set(rows) == {
        ("AmazonEC2", "c5.large"),
        ("AmazonEBS", "gp3"),
        ("AmazonEBS", "gp3-iops"),
        ("AmazonVPC", "natgateway"),
        ("AmazonRDS", "db.m5.large:postgresql:multi-az"),
        ("AmazonRDS", "storage:io1:multi-az"),
    }
    assert rows[("AmazonEC2", "c5.large")]["price"] == "0.085"  # Linux, not the Windows price
    assert doc["effectiveDate"] == "2024-10-02" and "Price List" in doc["source"]
    # compared with the bundled snapshot: unchanged prices keep their date, the rest is history
    assert report["prices"] == 6 and report["unchanged"] >= 5 and report["withdrawn"] > 0
    assert all(h["effectiveTo"] == "2024-10-05T00:00:00Z" for h in doc["history"])
    snap = PriceSnapshot.load(tmp_path)
    assert snap.lookup(
        "AWS", "AmazonRDS", "db.m5.large:postgresql:multi-az", "us-east-1"
    ).price == Decimal("0.356")


def test_azure_retail_prices_api_is_filtered_and_paged(stand_in: str, tmp_path: Path):
    with httpx.Client(timeout=10) as client:
        doc = sources.fetch_azure(
            client, regions=["eastus"], services=["Virtual Machines"], base=stand_in
        )
    assert len(StandIn.seen) == 2 and StandIn.seen[1] == "/api/retail/prices?page=2"
    assert [(r["service"], r["sku"], r["price"]) for r in doc["prices"]] == [
        ("Virtual Machines", "Standard_B2s", "0.0416"),
        ("Storage", "Premium_LRS:P10", "19.71"),
    ]
    assert doc["prices"][0]["effectiveFrom"] == "2023-03-01"


def test_gcp_billing_catalog_needs_the_key_from_the_secrets_provider(stand_in: str, tmp_path: Path):
    secrets = EnvironmentSecrets({"FINFOCUS_SECRET_GCP_BILLING_API_KEY": "test-key"})
    with httpx.Client(timeout=10) as client:
        report = sources.refresh(
            "gcp",
            client,
            tmp_path,
            secrets=secrets,
            regions=["us-central1", "us-east1"],
            services={"6F81-5844-456A": "Compute Engine"},
            base=stand_in,
        )
        assert report["prices"] == 3
        doc = json.loads((tmp_path / "gcp.json").read_text())
        assert {(r["sku"], r["region"], r["price"], r["unit"]) for r in doc["prices"]} == {
            ("e2:core", "us-central1", "0.021811", "Hrs"),
            ("e2:core", "us-east1", "0.021811", "Hrs"),
            ("e2:ram", "us-central1", "0.002923", "GiB-Hrs"),
        }
        assert any("pageToken=p2" in p for p in StandIn.seen) and all(
            "key=test-key" in p for p in StandIn.seen
        )
        # the derived machine type from the refreshed file
        hit = PriceSnapshot.load(tmp_path).lookup(
            "Google Cloud", "Compute Engine", "e2-medium", "us-central1"
        )
        assert hit.price == Decimal("0.033503")
        with pytest.raises(sources.SourceError, match="no Cloud Billing API key"):
            sources.refresh("gcp", client, tmp_path, secrets=EnvironmentSecrets({}), base=stand_in)
        with pytest.raises(sources.SourceError, match="HTTP 403"):
            sources.fetch_gcp(
                client,
                "wrong",
                regions=["us-central1"],
                services={"6F81-5844-456A": "Compute Engine"},
                base=stand_in,
            )


def test_gcp_descriptions_map_to_snapshot_keys_and_services():
    nat = sources.gcp_sku_rows(
        _gcp_sku("Cloud NAT Gateway: Uptime charge", "NAT", "h", 4500000, ["us-central1"]),
        "Compute Engine",
        ["us-central1"],
    )
    assert [(r["service"], r["sku"], r["price"]) for r in nat] == [
        ("Networking", "nat-gateway", "0.0045")
    ]
    sql = sources.gcp_sku_rows(
        _gcp_sku(
            "Cloud SQL for PostgreSQL: Regional - vCPU in Americas",
            "SQLGen2InstancesCPU",
            "h",
            82600000,
            ["us-central1"],
        ),
        "Cloud SQL",
        ["us-central1"],
    )
    assert [(r["service"], r["sku"], r["price"]) for r in sql] == [
        ("Cloud SQL", "cpu:ha", "0.0826")
    ]
    assert (
        sources.gcp_sku_rows(
            _gcp_sku("Licensing Fee for Windows Server", "License", "h", 46000000, ["us-central1"]),
            "Compute Engine",
            ["us-central1"],
        )
        == []
    )


def test_aws_price_list_query_api_through_boto3(stand_in: str, tmp_path: Path):
    import boto3

    pricing = boto3.client(
        "pricing",
        region_name="us-east-1",
        endpoint_url=stand_in,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
    )
    report = sources.refresh(
        "aws",
        None,
        tmp_path,
        api="query",
        pricing=pricing,
        services=["AmazonEC2"],
        regions=["us-east-1"],
    )
    assert report["prices"] == 2
    doc = json.loads((tmp_path / "aws.json").read_text())
    assert {(r["service"], r["sku"], r["price"]) for r in doc["prices"]} == {
        ("AmazonEC2", "c5.large", "0.085"),
        ("AmazonEBS", "gp3", "0.08"),
    }
    posts = [p for p in StandIn.seen if p.startswith("POST")]
    assert (
        len(posts) == 2
        and '"NextToken": "page-2"' in posts[1]
        and '"ServiceCode": "AmazonEC2"' in posts[0]
    )
    with pytest.raises(sources.SourceError, match="GetProducts AmazonRDS us-east-1"):
        sources.fetch_aws_query(pricing, services=["AmazonRDS"], regions=["us-east-1"])
