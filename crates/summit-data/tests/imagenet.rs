//! The ImageNet validation layout, built in a temporary directory from the
//! committed fixture images.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use summit_data::{DataError, Dataset, ImageNetVal, LabelFormat, Preprocess};

const CLASSES: &str = "n01440764 tench, Tinca tinca\n\
                       n01443537 goldfish, Carassius auratus\n\
                       \n\
                       n01484850 great white shark\n";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/folder")
        .join(name)
}

/// Images 1, 2, 4 (and a non-image file); the ground truth covers 1..=5.
fn layout(dir: &Path) -> (PathBuf, PathBuf) {
    let images = dir.join("val");
    std::fs::create_dir(&images).unwrap();
    std::fs::copy(
        fixture("cat/cat_02.jpg"),
        images.join("ILSVRC2012_val_00000002.JPEG"),
    )
    .unwrap();
    std::fs::copy(
        fixture("cat/cat_01.png"),
        images.join("ILSVRC2012_val_00000001.png"),
    )
    .unwrap();
    std::fs::copy(
        fixture("cat/truncated.jpg"),
        images.join("ILSVRC2012_val_00000004.JPEG"),
    )
    .unwrap();
    std::fs::write(images.join("LICENSE"), "x").unwrap();
    let classes = dir.join("synsets.txt");
    std::fs::write(&classes, CLASSES).unwrap();
    (images, classes)
}

#[test]
fn devkit_ground_truth_is_one_based_and_positional() {
    let tmp = tempfile::tempdir().unwrap();
    let (images, classes) = layout(tmp.path());
    let gt = tmp.path().join("ILSVRC2012_validation_ground_truth.txt");
    std::fs::write(&gt, "3\n1\n2\n2\n1\n\n").unwrap();
    let d = ImageNetVal::open(&images, &gt, &classes, Preprocess::Torchvision).unwrap();
    assert_eq!(d.label_format(), LabelFormat::Devkit);
    assert_eq!(d.class_names(), ["n01440764", "n01443537", "n01484850"]);
    assert_eq!(d.descriptions()[1], "goldfish, Carassius auratus");
    assert_eq!(d.len(), 3);
    let names: Vec<_> = d
        .paths()
        .iter()
        .map(|p| p.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "ILSVRC2012_val_00000001.png",
            "ILSVRC2012_val_00000002.JPEG",
            "ILSVRC2012_val_00000004.JPEG"
        ]
    );
    // lines 1, 2, 4 hold 3, 1, 2 → labels 2, 0, 1
    assert_eq!(d.labels(), [2, 0, 1]);
    assert_eq!(d.unmatched_labels(), 2);
    assert_eq!(d.ignored_files().len(), 1);
    assert_eq!(d.load(0).unwrap().dims(), [3, 224, 224]);
    let err = d.load(2).unwrap_err().to_string();
    assert!(
        err.contains("ILSVRC2012_val_00000004.JPEG") && err.contains("truncated"),
        "{err}"
    );

    // Renumber to another class order (e.g. a model's), with an extra class.
    let d = d
        .remap_classes(&["n01484850", "extra", "n01443537", "n01440764"])
        .unwrap();
    assert_eq!(d.labels(), [0, 3, 2]);
    assert_eq!(
        d.descriptions(),
        [
            "great white shark",
            "extra",
            "goldfish, Carassius auratus",
            "tench, Tinca tinca"
        ]
    );
    let err = d.remap_classes(&["n01484850"]).unwrap_err();
    assert!(matches!(err, DataError::UnknownClass { .. }), "{err}");
}

#[test]
fn val_txt_is_zero_based_by_file_name() {
    let tmp = tempfile::tempdir().unwrap();
    let (images, classes) = layout(tmp.path());
    let gt = tmp.path().join("val.txt");
    std::fs::write(
        &gt,
        "ILSVRC2012_val_00000004.JPEG 2\nval/ILSVRC2012_val_00000002.JPEG 0\n\n\
         ILSVRC2012_val_00000001.png 1\nILSVRC2012_val_00000009.JPEG 1\n",
    )
    .unwrap();
    let d = ImageNetVal::open(&images, &gt, &classes, Preprocess::lucid()).unwrap();
    assert_eq!(d.label_format(), LabelFormat::FileLabel);
    assert_eq!(d.labels(), [1, 0, 2]);
    assert_eq!(d.unmatched_labels(), 1);
}

fn open_err(gt_text: &str, classes_text: Option<&str>) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let (images, classes) = layout(tmp.path());
    if let Some(t) = classes_text {
        std::fs::write(&classes, t).unwrap();
    }
    let gt = tmp.path().join("gt.txt");
    std::fs::write(&gt, gt_text).unwrap();
    ImageNetVal::open(&images, &gt, &classes, Preprocess::Torchvision)
        .unwrap_err()
        .to_string()
}

#[test]
fn malformed_files_give_file_and_line() {
    let e = open_err("1\n2\nthree\n1\n", None);
    assert!(e.contains("gt.txt:3:") && e.contains("\"three\""), "{e}");
    let e = open_err("1\n2\n\n1\n", None);
    assert!(e.contains("gt.txt:3:"), "{e}");
    let e = open_err("1\n2\n4\n1\n", None);
    assert!(
        e.contains("gt.txt:3:") && e.contains("outside 1..=3"),
        "{e}"
    );
    let e = open_err("0\n2\n1\n1\n", None);
    assert!(e.contains("gt.txt:1:") && e.contains("1-based"), "{e}");
    let e = open_err("1\n2\n", None); // image 4 has no line
    assert!(
        e.contains("gt.txt")
            && e.contains("ILSVRC2012_val_00000004.JPEG")
            && e.contains("number 4"),
        "{e}"
    );
    let e = open_err("a.JPEG 1\nb.JPEG x\n", None);
    assert!(
        e.contains("gt.txt:2:") && e.contains("not an integer"),
        "{e}"
    );
    let e = open_err("a.JPEG 3\n", None);
    assert!(e.contains("gt.txt:1:") && e.contains("0-based"), "{e}");
    let e = open_err("ILSVRC2012_val_00000001.png 1\n", None);
    assert!(
        e.contains("ILSVRC2012_val_00000002.JPEG") && e.contains("not listed"),
        "{e}"
    );
    let e = open_err("\n\nn01440764 tench\n", None);
    assert!(
        e.contains("gt.txt:3:") && e.contains("unrecognised ground-truth line"),
        "{e}"
    );
    let e = open_err("", None);
    assert!(e.contains("gt.txt") && e.contains("no labels"), "{e}");
    let e = open_err("1\n1\n1\n1\n", Some("n1 a\nn2 b\nn1 c\n"));
    assert!(
        e.contains("synsets.txt:3:") && e.contains("first on line 1"),
        "{e}"
    );
    let e = open_err("1\n1\n1\n1\n", Some("\n \n"));
    assert!(e.contains("synsets.txt") && e.contains("no classes"), "{e}");
}

#[test]
fn class_list_with_bare_names_and_empty_image_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let (images, classes) = layout(tmp.path());
    std::fs::write(&classes, "tench\ngoldfish\n").unwrap();
    let gt = tmp.path().join("gt.txt");
    std::fs::write(&gt, "1\n2\n1\n2\n").unwrap();
    let d = ImageNetVal::open(&images, &gt, &classes, Preprocess::Torchvision).unwrap();
    assert_eq!(d.class_names(), ["tench", "goldfish"]);
    assert_eq!(d.descriptions(), ["tench", "goldfish"]);
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = ImageNetVal::open(&empty, &gt, &classes, Preprocess::Torchvision).unwrap_err();
    assert!(matches!(e, DataError::EmptyDataset { .. }), "{e}");
}
