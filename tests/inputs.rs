//! What the examples check before any work: the InceptionV1 run's weights and data (the
//! message a user sees without them), class names and indices, shard specs, class lists and
//! relabelled datasets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use summit_cli::CliError;
use summit_cli::args::{parse_shard, require_inception_inputs};
use summit_core::data::{Dataset, Image};
use summit_core::{
    ClassInfo, FASHION_CLASSES, Relabeled, class_index, class_indices, read_class_list,
};

#[test]
fn inception_without_weights_or_data_says_what_to_provide() {
    let err = require_inception_inputs(None, None).unwrap_err();
    assert!(matches!(err, CliError::Usage(_)));
    let msg = err.to_string();
    // what is missing
    assert!(msg.starts_with("no --weights and no --data given"), "{msg}");
    // how to get the weights: the three lines of Python of the README
    for line in [
        "import torch, torchvision",
        "model = torchvision.models.googlenet(weights=\"IMAGENET1K_V1\")",
        "torch.save(model.state_dict(), \"googlenet.pth\")",
        "--weights googlenet.pth",
    ] {
        assert!(msg.contains(line), "missing `{line}` in:\n{msg}");
    }
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(
        readme.contains("torchvision.models.googlenet(weights=\"IMAGENET1K_V1\")"),
        "the README shows the same Python"
    );
    // what data: an image folder or the ImageNet validation layout
    for part in [
        "image folder",
        "DIR/<class>/",
        "validation layout",
        "--labels",
        "--class-list",
    ] {
        assert!(msg.contains(part), "missing `{part}` in:\n{msg}");
    }

    // only the weights missing: only their help
    let tmp = tempfile::tempdir().unwrap();
    let msg = require_inception_inputs(None, Some(tmp.path()))
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with("no --weights given") && msg.contains("googlenet.pth"));
    assert!(!msg.contains("--data DIR"), "{msg}");
    // only the data missing: only its help
    let w = tmp.path().join("w.pth");
    std::fs::write(&w, b"x").unwrap();
    let msg = require_inception_inputs(Some(&w), None)
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with("no --data given") && msg.contains("--data DIR"));
    assert!(!msg.contains("torch.save"), "{msg}");
    // paths that do not exist are named
    let missing = tmp.path().join("nope.pth");
    let msg = require_inception_inputs(Some(&missing), Some(tmp.path()))
        .unwrap_err()
        .to_string();
    assert!(msg.contains(&missing.display().to_string()) && msg.contains("no such file"));
    let missing_dir = tmp.path().join("images");
    let msg = require_inception_inputs(Some(&w), Some(&missing_dir))
        .unwrap_err()
        .to_string();
    assert!(msg.contains(&missing_dir.display().to_string()) && msg.contains("no such directory"));
    // both present
    let (a, b) = require_inception_inputs(Some(&w), Some(tmp.path())).unwrap();
    assert_eq!((a.as_path(), b.as_path()), (w.as_path(), tmp.path()));
}

fn fashion_classes() -> Vec<ClassInfo> {
    FASHION_CLASSES.iter().map(|&n| ClassInfo::new(n)).collect()
}

#[test]
fn classes_by_name_synset_or_index() {
    let c = fashion_classes();
    assert_eq!(class_index(&c, "Ankle boot").unwrap(), 9);
    assert_eq!(class_index(&c, "ankle BOOT").unwrap(), 9);
    assert_eq!(class_index(&c, " 3 ").unwrap(), 3);
    assert_eq!(
        class_indices(&c, "Bag,0,trouser,Bag").unwrap(),
        vec![0, 1, 8]
    );
    let msg = class_index(&c, "Socks").unwrap_err().to_string();
    assert!(msg.contains("unknown class `Socks`"), "{msg}");
    for (i, name) in FASHION_CLASSES.iter().enumerate() {
        assert!(
            msg.contains(&format!("{i} {name}")),
            "{name} not listed: {msg}"
        );
    }
    assert!(class_index(&c, "10").is_err(), "index out of range");
    assert!(class_indices(&c, " , ").is_err(), "empty list");

    // synsets, and long lists are cut
    let many: Vec<ClassInfo> = (0..120)
        .map(|i| ClassInfo {
            name: format!("class_{i}"),
            synset: Some(format!("n{i:08}")),
        })
        .collect();
    assert_eq!(class_index(&many, "n00000042").unwrap(), 42);
    let msg = class_index(&many, "wolf").unwrap_err().to_string();
    assert!(
        msg.contains("the 120 classes") && msg.contains("… and 70 more"),
        "{msg}"
    );
    assert!(msg.contains("49 class_49 (n00000049)") && !msg.contains("class_50"));
}

#[test]
fn shard_specs() {
    assert_eq!(parse_shard("0/1").unwrap(), (0, 1));
    assert_eq!(parse_shard("3/4").unwrap(), (3, 4));
    for bad in ["4/4", "1/0", "1", "a/2", "1/b", ""] {
        let msg = parse_shard(bad).unwrap_err().to_string();
        assert!(
            msg.contains(&format!("shard `{bad}`")) && msg.contains("i/n"),
            "{msg}"
        );
    }
}

struct Toy {
    classes: Vec<String>,
    labels: Vec<usize>,
}

impl Dataset for Toy {
    fn class_names(&self) -> &[String] {
        &self.classes
    }
    fn labels(&self) -> &[usize] {
        &self.labels
    }
    fn source(&self, index: usize) -> String {
        format!("toy#{index}")
    }
    fn load(&self, index: usize) -> summit_core::data::Result<Image> {
        Ok(Image {
            channels: 1,
            height: 1,
            width: 1,
            data: vec![index as f32],
        })
    }
    fn sample_dims(&self) -> Option<[usize; 3]> {
        Some([1, 1, 1])
    }
}

#[test]
fn class_lists_and_relabelled_datasets() {
    let tmp = tempfile::tempdir().unwrap();
    let list = tmp.path().join("LOC_synset_mapping.txt");
    std::fs::write(
        &list,
        "n01440764 tench, Tinca tinca\n\nn02114548 white wolf, Arctic wolf\nn09999999\n",
    )
    .unwrap();
    let classes = read_class_list(&list).unwrap();
    assert_eq!(
        classes,
        vec![
            ClassInfo {
                name: "tench".into(),
                synset: Some("n01440764".into())
            },
            ClassInfo {
                name: "white_wolf".into(),
                synset: Some("n02114548".into())
            },
            ClassInfo {
                name: "n09999999".into(),
                synset: Some("n09999999".into())
            },
        ]
    );
    std::fs::write(&list, "n1 a\nn2 b\nn1 c\n").unwrap();
    let msg = read_class_list(&list).unwrap_err().to_string();
    assert!(msg.contains("line 3") && msg.contains("`n1`"), "{msg}");

    // an image folder with two of the model's classes, renumbered to the model's order
    let folder: Arc<dyn Dataset> = Arc::new(Toy {
        classes: vec!["n02114548".into(), "n01440764".into()],
        labels: vec![0, 1, 1, 0],
    });
    let order = ["n01440764", "n01443537", "n02114548"];
    let r = Relabeled::new(folder.clone(), &order, "classes.txt").unwrap();
    assert_eq!(r.class_names(), &order.map(String::from));
    assert_eq!(r.labels(), &[2, 0, 0, 2]);
    assert_eq!(r.source(2), "toy#2");
    assert_eq!(r.load(3).unwrap().data, vec![3.0]);
    let msg = Relabeled::new(folder, &order[..2], "classes.txt")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("n02114548") && msg.contains("toy#0") && msg.contains("classes.txt"),
        "{msg}"
    );
}
