//! Prints the `ResizeDeployment` CRD as YAML; its output is committed in `crds/`.

use kube::CustomResourceExt;

fn main() -> Result<(), serde_yaml::Error> {
    print!("{}", serde_yaml::to_string(&operator::crd::ResizeDeployment::crd())?);
    Ok(())
}
