//! The deployment template (infra/template.yaml) against the code it deploys: the table it creates must be the
//! shared definition (the same request the local stack and the test tables use), its policies name their actions,
//! and each function gets only the configuration its code reads. No AWS account or network is involved.
//!
//! CloudFormation short forms (`!Ref`, `!Sub`, `!If`, ...) parse as YAML tagged values; the walks below look
//! through them, so a policy statement inside an `!If` is checked like any other.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::config::{BehaviorVersion, Region};
use integration_tests::workspace_root;
use serde_yaml::{Mapping, Value};
use shared::config::{IngestConfig, QueryConfig};

fn template() -> Value {
    let path = workspace_root().join("infra/template.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The resources of the template, by logical id (loops such as `Fn::ForEach::Topic` are not resources).
fn resources(template: &Value) -> Vec<(String, &Value)> {
    template["Resources"]
        .as_mapping()
        .expect("the template has a Resources mapping")
        .iter()
        .filter(|(_, resource)| resource.get("Type").is_some())
        .filter_map(|(id, resource)| Some((id.as_str()?.to_owned(), resource)))
        .collect()
}

fn resources_of_type<'a>(template: &'a Value, kind: &str) -> Vec<(String, &'a Value)> {
    resources(template)
        .into_iter()
        .filter(|(_, resource)| resource["Type"].as_str() == Some(kind))
        .collect()
}

/// A value the comparison needs as literal text; an intrinsic function there would hide the definition.
fn text(value: &Value, what: &str) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => panic!("{what} must be a literal string in the template, found {other:?}"),
    }
}

fn list<'a>(value: &'a Value, what: &str) -> &'a Vec<Value> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("{what} must be a literal list in the template, found {value:?}"))
}

/// A table definition reduced to what both sources state, in a form that compares regardless of order.
#[derive(Debug, PartialEq, Eq)]
struct TableShape {
    billing_mode: String,
    key_schema: Vec<(String, String)>,
    attributes: BTreeSet<(String, String)>,
    indexes: BTreeMap<String, IndexShape>,
}

#[derive(Debug, PartialEq, Eq)]
struct IndexShape {
    key_schema: Vec<(String, String)>,
    projection_type: String,
    non_key_attributes: Vec<String>,
}

/// The table as the shared CreateTable request defines it.
fn shared_table() -> TableShape {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let request = shared::dynamo::table::create_table(&client, "notifications");
    let input = request.as_input();
    let keys = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| {
        schema
            .iter()
            .map(|k| (k.attribute_name().to_owned(), k.key_type().as_str().to_owned()))
            .collect::<Vec<_>>()
    };
    TableShape {
        billing_mode: input
            .get_billing_mode()
            .as_ref()
            .expect("billing mode is set")
            .as_str()
            .to_owned(),
        key_schema: keys(input.get_key_schema().as_deref().unwrap_or_default()),
        attributes: input
            .get_attribute_definitions()
            .iter()
            .flatten()
            .map(|a| (a.attribute_name().to_owned(), a.attribute_type().as_str().to_owned()))
            .collect(),
        indexes: input
            .get_global_secondary_indexes()
            .iter()
            .flatten()
            .map(|index| {
                let projection = index.projection().expect("every index has a projection");
                let mut non_key_attributes = projection.non_key_attributes().to_vec();
                non_key_attributes.sort();
                let shape = IndexShape {
                    key_schema: keys(index.key_schema()),
                    projection_type: projection
                        .projection_type()
                        .map(|t| t.as_str().to_owned())
                        .unwrap_or_default(),
                    non_key_attributes,
                };
                (index.index_name().to_owned(), shape)
            })
            .collect(),
    }
}

/// The properties of the one DynamoDB table of the template.
fn template_table(template: &Value) -> Value {
    let tables = resources_of_type(template, "AWS::DynamoDB::Table");
    assert_eq!(tables.len(), 1, "the template defines exactly one DynamoDB table");
    let (id, table) = &tables[0];
    assert!(table["Properties"].is_mapping(), "{id} has Properties");
    table["Properties"].clone()
}

/// The table as the template defines it.
fn deployed_table(template: &Value) -> TableShape {
    let table = template_table(template);
    let keys = |value: &Value, what: &str| {
        list(value, what)
            .iter()
            .map(|k| (text(&k["AttributeName"], what), text(&k["KeyType"], what)))
            .collect::<Vec<_>>()
    };
    TableShape {
        billing_mode: text(&table["BillingMode"], "BillingMode"),
        key_schema: keys(&table["KeySchema"], "KeySchema"),
        attributes: list(&table["AttributeDefinitions"], "AttributeDefinitions")
            .iter()
            .map(|a| {
                (
                    text(&a["AttributeName"], "AttributeDefinitions"),
                    text(&a["AttributeType"], "AttributeDefinitions"),
                )
            })
            .collect(),
        indexes: list(&table["GlobalSecondaryIndexes"], "GlobalSecondaryIndexes")
            .iter()
            .map(|index| {
                let name = text(&index["IndexName"], "IndexName");
                let mut non_key_attributes: Vec<String> = list(
                    &index["Projection"]["NonKeyAttributes"],
                    &format!("{name} NonKeyAttributes"),
                )
                .iter()
                .map(|a| text(a, "NonKeyAttributes"))
                .collect();
                non_key_attributes.sort();
                let shape = IndexShape {
                    key_schema: keys(&index["KeySchema"], &format!("{name} KeySchema")),
                    projection_type: text(&index["Projection"]["ProjectionType"], "ProjectionType"),
                    non_key_attributes,
                };
                (name, shape)
            })
            .collect(),
    }
}

#[test]
fn the_deployed_table_has_the_key_and_attributes_of_the_shared_definition() {
    let shared = shared_table();
    let deployed = deployed_table(&template());
    assert_eq!(deployed.key_schema, shared.key_schema, "key schema");
    assert_eq!(deployed.attributes, shared.attributes, "attribute definitions");
    assert_eq!(deployed.billing_mode, shared.billing_mode, "billing mode");
}

#[test]
fn the_deployed_table_has_the_indexes_of_the_shared_definition() {
    let shared = shared_table();
    let deployed = deployed_table(&template());
    assert_eq!(
        deployed.indexes.keys().collect::<Vec<_>>(),
        shared.indexes.keys().collect::<Vec<_>>(),
        "index names"
    );
    for (name, index) in &shared.indexes {
        assert_eq!(&deployed.indexes[name], index, "index {name}");
    }
    assert_eq!(shared.indexes.len(), shared::dynamo::table::INDEXES.len());
}

#[test]
fn the_deployed_table_expires_records_on_the_shared_ttl_attribute() {
    let table = template_table(&template());
    let ttl = &table["TimeToLiveSpecification"];
    assert_eq!(
        text(&ttl["AttributeName"], "TTL attribute"),
        shared::dynamo::table::TTL_ATTRIBUTE
    );
    assert_eq!(ttl["Enabled"], Value::Bool(true), "TTL is enabled");
}

/// Every policy statement in `value` (a mapping with an `Effect`), wherever it sits: role policies, managed
/// policies, bucket policies, inside `!If` branches.
fn statements<'a>(value: &'a Value, found: &mut Vec<&'a Mapping>) {
    match value {
        Value::Mapping(mapping) => {
            if mapping.contains_key("Effect") {
                found.push(mapping);
            }
            for child in mapping.values() {
                statements(child, found);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|item| statements(item, found)),
        Value::Tagged(tagged) => statements(&tagged.value, found),
        _ => {}
    }
}

/// Every string inside `value`, looking through lists and intrinsic functions.
fn strings<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => found.push(s),
        Value::Sequence(items) => items.iter().for_each(|item| strings(item, found)),
        Value::Mapping(mapping) => mapping.values().for_each(|child| strings(child, found)),
        Value::Tagged(tagged) => strings(&tagged.value, found),
        _ => {}
    }
}

#[test]
fn no_policy_statement_in_the_template_uses_a_wildcard_action() {
    let template = template();
    let mut found = Vec::new();
    statements(&template["Resources"], &mut found);
    assert!(
        found.len() >= 10,
        "the walk finds the template's statements, found {}",
        found.len()
    );
    for statement in found {
        assert!(
            !statement.contains_key("NotAction"),
            "NotAction grants everything it does not name: {statement:?}"
        );
        let action = statement
            .get("Action")
            .unwrap_or_else(|| panic!("a statement without Action: {statement:?}"));
        let mut actions = Vec::new();
        strings(action, &mut actions);
        assert!(!actions.is_empty(), "a statement names no action: {statement:?}");
        for action in actions {
            assert!(!action.contains('*'), "wildcard action {action:?} in {statement:?}");
            assert!(action.contains(':'), "{action:?} is not a service:Action name");
        }
    }
}

#[test]
fn every_function_runs_with_its_own_role_and_no_generated_policies() {
    let template = template();
    let functions = resources_of_type(&template, "AWS::Serverless::Function");
    assert_eq!(functions.len(), 2, "the ingest and query functions");
    let mut roles = BTreeSet::new();
    for (id, function) in &functions {
        let properties = &function["Properties"];
        assert!(
            properties.get("Policies").is_none(),
            "{id} takes SAM-generated policies; give its role exactly what it needs"
        );
        let role = match &properties["Role"] {
            Value::Tagged(tagged) if tagged.tag == "GetAtt" => text(&tagged.value, "Role").replace(".Arn", ""),
            other => panic!("{id} must take a role defined in the template, found {other:?}"),
        };
        assert!(
            roles.insert(role.clone()),
            "{id} shares role {role} with another function"
        );
    }
}

#[test]
fn each_function_is_configured_only_with_variables_its_code_reads() {
    let template = template();
    let functions = resources_of_type(&template, "AWS::Serverless::Function");
    let cases: [(&str, &[&str], &[&str]); 2] = [
        (
            "ingest",
            &IngestConfig::VARIABLES,
            &["TABLE_NAME", "PAYLOAD_BUCKET", "FAILURE_MODE"],
        ),
        ("query", &QueryConfig::VARIABLES, &["TABLE_NAME", "CURSOR_SECRET_ARN"]),
    ];
    for (binary, reads, required) in cases {
        let (_, function) = functions
            .iter()
            .find(|(_, f)| f["Metadata"]["BuildProperties"]["Binary"] == binary)
            .unwrap_or_else(|| panic!("the template builds the {binary} binary"));
        let variables = function["Properties"]["Environment"]["Variables"]
            .as_mapping()
            .unwrap_or_else(|| panic!("the {binary} function has environment variables"));
        for name in variables.keys() {
            let name = text(name, "variable name");
            assert!(
                reads.contains(&name.as_str()) || name == "RUST_LOG",
                "the {binary} function does not read {name}"
            );
        }
        for name in required {
            assert!(variables.contains_key(*name), "the template sets {name} for {binary}");
        }
    }
}

#[test]
fn batch_item_failures_are_switched_on_in_the_trigger_and_the_function_together() {
    let template = template();
    let condition_of = |value: &Value, what: &str| match value {
        Value::Tagged(tagged) if tagged.tag == "If" => text(&list(&tagged.value, what)[0], what),
        other => panic!("{what} must follow the ReportBatchItemFailures condition, found {other:?}"),
    };
    let (_, ingest) = resources_of_type(&template, "AWS::Serverless::Function")
        .into_iter()
        .find(|(_, f)| f["Metadata"]["BuildProperties"]["Binary"] == "ingest")
        .expect("the template builds the ingest binary");
    let failure_mode = &ingest["Properties"]["Environment"]["Variables"]["FAILURE_MODE"];
    let mode_condition = condition_of(failure_mode, "FAILURE_MODE");
    let mut mode_values = Vec::new();
    strings(failure_mode, &mut mode_values);
    assert!(mode_values.contains(&"report-batch-item-failures") && mode_values.contains(&"fail-invocation"));

    let triggers = triggers(&template);
    assert_eq!(triggers.len(), 1, "one event source mapping per topic, from one loop");
    for trigger in triggers {
        let types = &trigger["Properties"]["FunctionResponseTypes"];
        assert_eq!(condition_of(types, "FunctionResponseTypes"), mode_condition);
    }
}

/// The event source mappings of the template (one loop over the topics).
fn triggers(template: &Value) -> Vec<Value> {
    template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(key, _)| key.as_str().is_some_and(|k| k.starts_with("Fn::ForEach::")))
        .flat_map(|(_, each)| list(each, "Fn::ForEach")[2].as_mapping().cloned().unwrap_or_default())
        .filter(|(_, resource)| resource["Type"] == "AWS::Lambda::EventSourceMapping")
        .map(|(_, resource)| resource)
        .collect()
}

#[test]
fn the_triggers_give_ups_are_seen_every_mapping_has_metrics_and_each_failed_batch_reaches_the_alarm_topic() {
    let template = template();
    for trigger in triggers(&template) {
        let metrics: Vec<String> = list(&trigger["Properties"]["MetricsConfig"]["Metrics"], "Metrics")
            .iter()
            .map(|m| text(m, "a metric"))
            .collect();
        assert_eq!(metrics, ["EventCount", "ErrorCount", "KafkaMetrics"]);
        let mut destination = Vec::new();
        strings(&trigger["Properties"]["DestinationConfig"], &mut destination);
        assert!(destination.contains(&"FailedBatchBucket.Arn"), "{destination:?}");
    }
    let bucket = &template["Resources"]["FailedBatchBucket"]["Properties"];
    assert_eq!(
        bucket["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"],
        Value::Bool(true),
        "the failed-batch bucket tells EventBridge of each new object"
    );
    let rules = resources_of_type(&template, "AWS::Events::Rule");
    let rule = rules
        .iter()
        .find(|(_, rule)| {
            let mut names = Vec::new();
            strings(
                &rule["Properties"]["EventPattern"]["detail"]["bucket"]["name"],
                &mut names,
            );
            names.contains(&"FailedBatchBucket")
        })
        .map(|(_, rule)| rule)
        .expect("a rule on the failed-batch bucket's new objects");
    assert_eq!(rule["Properties"]["EventPattern"]["detail-type"][0], "Object Created");
    let mut targets = Vec::new();
    strings(&rule["Properties"]["Targets"], &mut targets);
    assert!(
        targets.contains(&"AlarmTopic"),
        "the rule notifies the alarm topic: {targets:?}"
    );
    let mut policy = Vec::new();
    strings(&template["Resources"]["AlarmTopicPolicy"]["Properties"], &mut policy);
    assert!(
        policy.contains(&"events.amazonaws.com") && policy.contains(&"FailedBatchAlarmRule.Arn"),
        "EventBridge may publish to the alarm topic for that rule only: {policy:?}"
    );
    assert!(
        policy.contains(&"cloudwatch.amazonaws.com"),
        "a topic policy replaces the default one: the alarms may still publish: {policy:?}"
    );
}

#[test]
fn network_interfaces_are_limited_to_the_brokers_vpc_and_the_cursor_key_never_sits_in_plain_text() {
    let template = template();
    let mut found = Vec::new();
    statements(&template["Resources"]["IngestRole"], &mut found);
    let manage = found
        .iter()
        .find(|s| s.get("Sid").and_then(Value::as_str) == Some("ManageNetworkInterfaces"))
        .expect("the ingest role manages network interfaces");
    let mut vpc = Vec::new();
    strings(&manage["Condition"]["ArnEquals"]["ec2:Vpc"], &mut vpc);
    assert!(vpc.iter().any(|arn| arn.ends_with(":vpc/${KafkaVpcId}")), "{vpc:?}");
    let mut resources = Vec::new();
    strings(&manage["Resource"], &mut resources);
    assert!(
        resources.iter().any(|r| r.ends_with(":subnet/${Id}"))
            && resources.iter().any(|r| r.ends_with(":security-group/${Id}")),
        "the configured subnets and security groups by id: {resources:?}"
    );

    let (_, query) = resources_of_type(&template, "AWS::Serverless::Function")
        .into_iter()
        .find(|(_, f)| f["Metadata"]["BuildProperties"]["Binary"] == "query")
        .expect("the query function");
    let mut variables = Vec::new();
    strings(&query["Properties"]["Environment"], &mut variables);
    assert!(
        variables.iter().all(|v| !v.contains("{{resolve:")),
        "no dynamic reference puts a secret in the function's configuration: {variables:?}"
    );
    assert_eq!(
        query["Properties"]["Environment"]["Variables"]["CURSOR_SECRET_ARN"],
        serde_yaml::from_str::<Value>("!Ref CursorSecret").unwrap()
    );
}

/// Every route that answers data is authorized; the only open routes are the console's pages, and only where a
/// browser can authorize its API calls itself (a JWT authorizer).
#[test]
fn only_the_consoles_pages_are_open_and_only_with_a_jwt_authorizer() {
    let template = template();
    let routes = resources_of_type(&template, "AWS::ApiGatewayV2::Route");
    let mut open = Vec::new();
    for (name, route) in &routes {
        let properties = &route["Properties"];
        let key = text(&properties["RouteKey"], "RouteKey");
        assert!(key.starts_with("GET /"), "{name}: the API only reads: {key}");
        if properties["AuthorizationType"] == "NONE" {
            assert_eq!(route["Condition"], "UsesJwt", "{name} is open without a JWT authorizer");
            assert!(
                key == "GET /console" || key == "GET /console/{proxy+}",
                "{name} opens {key}"
            );
            open.push(key);
        } else {
            assert_eq!(
                properties["AuthorizationType"],
                serde_yaml::from_str::<Value>("!If [UsesJwt, JWT, AWS_IAM]").unwrap(),
                "{name}"
            );
        }
    }
    open.sort();
    assert_eq!(open, ["GET /console", "GET /console/{proxy+}"]);
}
